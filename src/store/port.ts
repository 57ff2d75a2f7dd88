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
  "purgeIdempotencyKeys",
  "ping",
  "close",
] as const satisfies readonly (keyof Store)[];
type Unlisted = Exclude<keyof Store, (typeof storeOperations)[number]>;
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
