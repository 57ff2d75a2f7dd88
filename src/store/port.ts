import type { EventTally, StoredEvent } from "../domain/events.ts";
import type {
  ClaimedCoupon,
  Coupon,
  NewCoupon,
  Order,
  Page,
  PageRequest,
  PointBalance,
  PointHistoryEntry,
  PopularProduct,
  Product,
  User,
  UserCouponStatus,
  UserCouponWithCoupon,
} from "../domain/model.ts";
import type {
  CancelOrder,
  ChargePoints,
  ClaimCoupon,
  Idempotent,
  IdempotentRequest,
  PlaceOrder,
} from "../domain/writes.ts";

export type { CancelOrder, ChargePoints, ClaimCoupon, Idempotent, IdempotentRequest, PlaceOrder };

/**
 * The storage port. Every method either commits all of its effect or none of it, and throws only
 * `DomainError`s for outcomes a caller should see. The writes are the scripts of domain/writes.ts,
 * run inside the adapter's transaction: adapters only move data, they never decide a rule.
 */
export interface Store {
  createUser(name: string, now: number): Promise<User>;
  getUser(userId: number): Promise<User>;

  chargePoints(command: ChargePoints): Promise<Idempotent<PointBalance>>;
  listPointHistory(userId: number, page: PageRequest): Promise<Page<PointHistoryEntry>>;

  createProduct(input: NewProduct, now: number): Promise<Product>;
  getProduct(productId: number): Promise<Product>;
  listProducts(page: PageRequest): Promise<Page<Product>>;
  popularProducts(query: PopularQuery): Promise<PopularProduct[]>;

  createCoupon(input: NewCoupon, now: number): Promise<Coupon>;
  getCoupon(couponId: number): Promise<Coupon>;
  claimCoupon(command: ClaimCoupon): Promise<ClaimedCoupon>;
  listUserCoupons(query: UserCouponsQuery): Promise<UserCouponWithCoupon[]>;

  placeOrder(command: PlaceOrder): Promise<Idempotent<Order>>;
  getOrder(orderId: number): Promise<Order>;
  listUserOrders(userId: number, page: PageRequest): Promise<Page<Order>>;
  cancelOrder(command: CancelOrder): Promise<Order>;

  /** The feed: events with an id above `after`, oldest first, at most `limit`. */
  listEvents(after: number, limit: number): Promise<StoredEvent[]>;
  /** What the relay and the retention use (not timed by /metrics: they are not requests). */
  readonly outbox: Outbox;

  /** Deletes stored idempotent responses created before `before`; returns how many. */
  purgeIdempotencyKeys(before: number): Promise<number>;
  /** Throws when the database cannot answer. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Every operation of the port, for the wrappers that apply to all of them (metrics, the PostgreSQL
 * fault answers); a compile error here when the port gains one and the list does not.
 */
export const storeOperations = [
  "createUser",
  "getUser",
  "chargePoints",
  "listPointHistory",
  "createProduct",
  "getProduct",
  "listProducts",
  "popularProducts",
  "createCoupon",
  "getCoupon",
  "claimCoupon",
  "listUserCoupons",
  "placeOrder",
  "getOrder",
  "listUserOrders",
  "cancelOrder",
  "listEvents",
  "purgeIdempotencyKeys",
  "ping",
  "close",
] as const satisfies readonly (keyof Store)[];
/** Not an operation: handed through as it is. */
type Unlisted = Exclude<keyof Store, (typeof storeOperations)[number] | "outbox">;
const everyOperationListed: [Unlisted] extends [never] ? true : Unlisted = true;
void everyOperationListed;

export interface NewProduct {
  name: string;
  price: number;
  stock: number;
}

export interface PopularQuery {
  /** Orders placed at or after this instant (epoch ms) count. */
  since: number;
  limit: number;
}

export interface UserCouponsQuery {
  userId: number;
  /** Only coupons of this status; null: all. */
  status: UserCouponStatus | null;
  now: number;
}

/**
 * The outbox as the relay, the retention and /metrics use it. Events are written by the writes
 * themselves (domain/writes.ts), in their transactions; this only reads them and keeps, for each sink
 * the relay pushes to, the id of the last event it received.
 */
export interface Outbox {
  /** Whether the writes record events (EVENTS=on). */
  readonly recording: boolean;
  /** Events written by this process's committed writes, by type. */
  readonly tally: EventTally;
  /** Events with an id above `after`, oldest first, at most `limit`. */
  eventsAfter(after: number, limit: number): Promise<StoredEvent[]>;
  /** The id of the last event `sink` received (0: none yet). */
  deliveredTo(sink: string): Promise<number>;
  /** `sink` has received every event up to `id`; a cursor never moves back. */
  markDelivered(sink: string, id: number): Promise<void>;
  /** When the oldest event `sink` has not received occurred (epoch ms); null when it has them all. */
  oldestUndelivered(sink: string): Promise<number | null>;
  /** Deletes the events that occurred before `before` and that each of `sinks` has received; how many. */
  purgeEvents(before: number, sinks: readonly string[]): Promise<number>;
  /** The lock that lets one relay at a time deliver, across every process on this database. */
  readonly relayLock: RelayLock;
}

/** Held by one process at a time, released when it releases it or dies. */
export interface RelayLock {
  /** True when this process holds the lock (taken now, or held already); false when another does. */
  acquire(): Promise<boolean>;
  /** Whether this process still holds it (a PostgreSQL session can be lost). */
  held(): Promise<boolean>;
  release(): Promise<void>;
}
