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
import type { RequestedLine } from "../domain/order.ts";

/**
 * The storage port. Every method either commits all of its effect or none of it, and throws only
 * `DomainError`s for outcomes a caller should see. Adapters move data and apply the pure rules in
 * `src/domain` inside their transactions; they never decide a business rule of their own.
 */
export interface Store {
  createUser(name: string, now: number): Promise<User>;
  getUser(userId: number): Promise<User>;

  chargePoints(command: ChargePoints): Promise<Idempotent<PointBalance>>;
  listPointHistory(userId: number, page: PageRequest): Promise<Page<PointHistoryEntry>>;

  createProduct(input: { name: string; price: number; stock: number }, now: number): Promise<Product>;
  getProduct(productId: number): Promise<Product>;
  listProducts(page: PageRequest): Promise<Page<Product>>;
  popularProducts(query: { since: number; limit: number }): Promise<PopularProduct[]>;

  createCoupon(input: NewCoupon, now: number): Promise<Coupon>;
  getCoupon(couponId: number): Promise<Coupon>;
  claimCoupon(command: { userId: number; couponId: number; now: number }): Promise<ClaimedCoupon>;
  listUserCoupons(query: {
    userId: number;
    status: UserCouponStatus | null;
    now: number;
  }): Promise<UserCouponWithCoupon[]>;

  placeOrder(command: PlaceOrder): Promise<Idempotent<Order>>;
  getOrder(orderId: number): Promise<Order>;
  listUserOrders(userId: number, page: PageRequest): Promise<Page<Order>>;
  cancelOrder(command: { orderId: number; now: number }): Promise<Order>;

  /** Deletes stored idempotent responses created before `before`; returns how many. */
  purgeIdempotencyKeys(before: number): Promise<number>;
  /** Throws when the database cannot answer. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** A request sent with an `Idempotency-Key`: its fingerprint covers method, path and body. */
export interface IdempotentRequest {
  key: string;
  fingerprint: string;
  /** The status the response will have, stored with it for replays. */
  statusCode: number;
}

/**
 * Either the work was done now, or the same request was done before and its stored response is
 * returned as it was sent (status and exact body).
 */
export type Idempotent<T> = { replayed: false; value: T } | { replayed: true; statusCode: number; body: string };

export interface ChargePoints {
  userId: number;
  amount: number;
  now: number;
  idempotency: IdempotentRequest | null;
}

export interface PlaceOrder {
  userId: number;
  items: RequestedLine[];
  userCouponId: number | null;
  now: number;
  idempotency: IdempotentRequest | null;
}
