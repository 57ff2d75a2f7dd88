/**
 * The four writes a caller can make (claim a coupon, place an order, cancel it, charge points), each
 * written once as a script of data moves (see script.ts). The order of the steps is the order of the
 * checks, and so the answer to any request, on every backend. Stores only answer the moves: "no row"
 * is null, "no change" is false; every refusal is decided and built here.
 */
import { assertCouponUsable, assertIssuable, type CouponDefinition, expiryOf, type HeldCoupon } from "./coupon.ts";
import { notFound, refused } from "./errors.ts";
import { type ClaimEvents, claimEvents, type NewEvent, orderCancelled, orderPaid, pointsCharged } from "./events.ts";
import { limits } from "./limits.ts";
import type { ClaimedCoupon, Order, OrderLine, PointBalance, PointHistoryType } from "./model.ts";
import {
  assertCancellable,
  linesInLockOrder,
  type OrderRecord,
  orderOf,
  orderTotal,
  type RequestedLine,
  settle,
} from "./order.ts";
import { askerOf, type Script } from "./script.ts";
import { isoOf } from "./time.ts";

/** A request sent with an `Idempotency-Key`: its fingerprint covers method, path and body. */
export interface IdempotentRequest {
  key: string;
  fingerprint: string;
  /** The status the response will have, stored with it for replays. */
  statusCode: number;
}

/**
 * Either the work was done now, or the same request was done before and its stored response is
 * returned as it was sent (status and exact body). Work done now carries `json`, the value's JSON,
 * when the write already built it (for its stored response or its event): the answer sends those bytes
 * rather than building them again.
 */
export type Idempotent<T> =
  | { replayed: false; value: T; json?: string }
  | { replayed: true; statusCode: number; body: string };

export interface ClaimCoupon {
  userId: number;
  couponId: number;
  now: number;
}

export interface PlaceOrder {
  userId: number;
  items: RequestedLine[];
  userCouponId: number | null;
  now: number;
  idempotency: IdempotentRequest | null;
}

export interface CancelOrder {
  orderId: number;
  now: number;
}

export interface ChargePoints {
  userId: number;
  amount: number;
  now: number;
  idempotency: IdempotentRequest | null;
}

export interface StoredRequest {
  fingerprint: string;
  statusCode: number;
  responseBody: string;
}

export interface NewHistoryEntry {
  userId: number;
  type: PointHistoryType;
  amount: number;
  balanceAfter: number;
  orderId: number | null;
  createdAt: number;
}

/** The outbox: an event is written in the same transaction as the effect it tells of. */
export interface EventStorage {
  recordEvent(event: NewEvent): void;
}

/** Moves shared by several writes. */
export interface UserStorage {
  userExists(userId: number): boolean;
  insertHistory(entry: NewHistoryEntry): void;
  /**
   * The balance after the credit, or null when it would pass `maxBalance`. Every credit goes through
   * this guard (a charge, a refund), and the schema's CHECK backs it.
   */
  creditWithinLimit(userId: number, amount: number, maxBalance: number): number | null;
}

export interface IdempotencyStorage {
  /** What was stored under this user's key, or null when the key is new (PostgreSQL also locks the key). */
  storedRequest(userId: number, request: IdempotentRequest): StoredRequest | null;
  storeResponse(userId: number, request: IdempotentRequest, responseBody: string, now: number): void;
}

export interface ClaimStorage {
  /** The drop's definition, or null. */
  findCoupon(couponId: number): CouponDefinition | null;
  userExists(userId: number): boolean;
  /**
   * A refusal already known without taking a lock: the user holds this coupon, else the drop is
   * empty (both facts never revert, so a read of committed data, or a cache of it, may say so). Null:
   * nothing known, go on; the guards of `takeCoupon` have the final word.
   */
  knownRefusal(userId: number, couponId: number): ClaimRefusal | null;
  /**
   * The two guards, all or nothing, in this order: one per user (the unique (user, coupon) index),
   * then the supply (`issued < total`). The new user coupon's id, or which guard refused it. With
   * `events`, a claim that commits also records coupon.claimed and, when it took the drop's last
   * coupon, coupon.sold_out (see ClaimEvents).
   */
  takeCoupon(holding: NewHolding, events: ClaimEvents | null): number | ClaimRefusal;
}

export type ClaimRefusal = "ALREADY_CLAIMED" | "SOLD_OUT";

export interface NewHolding {
  userId: number;
  couponId: number;
  issuedAt: number;
  expiresAt: number;
}

/** Everything an order writes, decided before any of it is written. */
export interface OrderCommit {
  order: OrderRecord;
  /** In ascending product id: the order every backend takes stock in. */
  lines: OrderLine[];
  /** Stored with the order when the request carried an Idempotency-Key. */
  response: { request: IdempotentRequest; body: string } | null;
  /** order.paid, written with the order (null: events are off). */
  event: NewEvent | null;
}

/** The guard that refused an order's commit (KEY_TAKEN: a request with the same key committed first). */
export type OrderRefusal =
  | { guard: "STOCK"; productId: number; quantity: number }
  | { guard: "COUPON" }
  | { guard: "POINTS" }
  | { guard: "KEY_TAKEN" };

export interface OrderStorage extends Pick<UserStorage, "userExists">, Pick<IdempotencyStorage, "storedRequest"> {
  /** Unit prices of the products, in the order asked; null for a product that does not exist. */
  pricesOf(productIds: number[]): (number | null)[];
  heldCoupon(userCouponId: number): HeldCoupon | null;
  /** The id the new order will have (reserved; unused if the order is refused). */
  newOrderId(): number;
  /**
   * The order's guarded writes, all or nothing, in this order: the key of an idempotent request
   * (KEY_TAKEN), the stock of each line in ascending product id (`stock >= quantity`), the coupon
   * (`AVAILABLE` → `USED`), the points when something is to be paid (`balance >= paid`); then the
   * order row, its lines, the USE history entry with the balance after the debit, the stored
   * response and the event. Null when committed, else the first guard that refused.
   */
  commitOrder(commit: OrderCommit): OrderRefusal | null;
}

export interface CancelStorage extends UserStorage, EventStorage {
  findOrder(orderId: number): OrderRecord | null;
  /** True when the order was PAID and is now CANCELLED. */
  markCancelled(orderId: number, now: number): boolean;
  orderLines(orderId: number): OrderLine[];
  returnStock(productId: number, quantity: number): void;
  releaseCoupon(userCouponId: number): void;
}

export type ChargeStorage = UserStorage & IdempotencyStorage & EventStorage;

/** Everything a store must answer to run every write. */
export type WriteStorage = ClaimStorage & OrderStorage & CancelStorage & ChargeStorage;

const askClaim = askerOf<ClaimStorage>();
const askOrder = askerOf<OrderStorage>();
const askCancel = askerOf<CancelStorage>();
const askCharge = askerOf<ChargeStorage>();
const askStored = askerOf<Pick<IdempotencyStorage, "storedRequest">>();
const askKey = askerOf<IdempotencyStorage>();

const claimRefusal = { ALREADY_CLAIMED: refused.alreadyClaimed, SOLD_OUT: refused.soldOut };

/**
 * Claim: coupon exists → user exists → inside the issue window → the user does not hold it yet →
 * one is left. (A user who holds a sold-out coupon is told they hold it.) Records coupon.claimed, and
 * coupon.sold_out when it takes the last one, with `recordEvents`.
 */
export function* claimCoupon(command: ClaimCoupon, recordEvents: boolean): Script<ClaimStorage, ClaimedCoupon> {
  const { userId, couponId, now } = command;
  const coupon = yield* askClaim("findCoupon", couponId);
  if (coupon === null) throw notFound.coupon(couponId);
  if (!(yield* askClaim("userExists", userId))) throw notFound.user(userId);
  assertIssuable(coupon, now);
  const known = yield* askClaim("knownRefusal", userId, couponId);
  if (known !== null) throw claimRefusal[known]();
  const expiresAt = expiryOf(now, coupon.validDays);
  const claim = {
    userId,
    couponId,
    status: "AVAILABLE" as const,
    issuedAt: isoOf(now),
    expiresAt: isoOf(expiresAt),
    usedAt: null,
  };
  const events = recordEvents ? claimEvents(claim, coupon, now) : null;
  const id = yield* askClaim("takeCoupon", { userId, couponId, issuedAt: now, expiresAt }, events);
  if (typeof id !== "number") throw claimRefusal[id]();
  return { id, ...claim };
}

/** A replay of an earlier identical request, or null when this key is new (or there is none). */
function* replayOf(
  userId: number,
  request: IdempotentRequest | null,
): Script<Pick<IdempotencyStorage, "storedRequest">, Idempotent<never> | null> {
  if (request === null) return null;
  const stored = yield* askStored("storedRequest", userId, request);
  if (stored === null) return null;
  if (stored.fingerprint !== request.fingerprint) throw refused.idempotencyKeyReused();
  return { replayed: true, statusCode: stored.statusCode, body: stored.responseBody };
}

function* remember(
  userId: number,
  request: IdempotentRequest | null,
  response: unknown,
  now: number,
): Script<IdempotencyStorage, void> {
  if (request !== null) yield* askKey("storeResponse", userId, request, JSON.stringify(response), now);
}

/**
 * Order: user exists → replay of the same Idempotency-Key → every product exists (ascending id) →
 * the coupon is usable → then the commit's guards: stock of each line (ascending id) → the coupon
 * is still unused → points. Then the rows: order, lines, history, stored response, order.paid (with
 * `recordEvents`). All or nothing.
 */
export function* placeOrder(command: PlaceOrder, recordEvents: boolean): Script<OrderStorage, Idempotent<Order>> {
  const { userId, userCouponId, now, idempotency } = command;
  if (!(yield* askOrder("userExists", userId))) throw notFound.user(userId);
  const replay = yield* replayOf(userId, idempotency);
  if (replay !== null) return replay;

  const requested = linesInLockOrder(command.items);
  const prices = yield* askOrder(
    "pricesOf",
    requested.map((line) => line.productId),
  );
  const lines: OrderLine[] = requested.map(({ productId, quantity }, i) => {
    const unitPrice = prices[i];
    if (unitPrice === null || unitPrice === undefined) throw notFound.product(productId);
    return { productId, quantity, unitPrice };
  });
  const totalAmount = orderTotal(lines);
  let held: HeldCoupon | null = null;
  if (userCouponId !== null) {
    held = yield* askOrder("heldCoupon", userCouponId);
    assertCouponUsable(held, userId, totalAmount, now);
  }
  const amounts = settle(totalAmount, held?.terms ?? null);

  const orderId = yield* askOrder("newOrderId");
  const record: OrderRecord = {
    id: orderId,
    userId,
    status: "PAID",
    userCouponId,
    createdAt: now,
    cancelledAt: null,
    ...amounts,
  };
  const order = orderOf(record, lines);
  const body = idempotency !== null || recordEvents ? JSON.stringify(order) : "";
  const response = idempotency === null ? null : { request: idempotency, body };
  const event = recordEvents ? orderPaid(order, now, body) : null;
  const refusal = yield* askOrder("commitOrder", { order: record, lines, response, event });
  switch (refusal?.guard) {
    case undefined:
      break;
    case "STOCK":
      throw refused.insufficientStock(refusal.productId, refusal.quantity);
    case "COUPON":
      throw refused.couponUsed();
    case "POINTS":
      throw refused.insufficientPoints(amounts.paidAmount);
    case "KEY_TAKEN": {
      // The same key committed meanwhile: answer as that request was answered (or refuse the reuse).
      const replay = yield* replayOf(userId, idempotency);
      if (replay === null) throw new Error("an Idempotency-Key was taken but nothing is stored under it");
      return replay;
    }
  }
  return body === "" ? { replayed: false, value: order } : { replayed: false, value: order, json: body };
}

/**
 * Cancel: order exists → it is PAID (and still is when marked) → stock back, coupon AVAILABLE again,
 * points refunded: the exact inverse of placing it. A refund that would take the balance past its cap
 * (points charged meanwhile) is refused, and with it the whole cancel: the order stays PAID. (The
 * refund comes last, as the user's row is taken last when an order is placed: the same lock order.)
 * Then order.cancelled, with `recordEvents`.
 */
export function* cancelOrder(command: CancelOrder, recordEvents: boolean): Script<CancelStorage, Order> {
  const { orderId, now } = command;
  const order = yield* askCancel("findOrder", orderId);
  if (order === null) throw notFound.order(orderId);
  assertCancellable(order.status);
  if (!(yield* askCancel("markCancelled", orderId, now))) throw refused.notCancellable("CANCELLED");

  const lines = yield* askCancel("orderLines", orderId);
  for (const line of lines) yield* askCancel("returnStock", line.productId, line.quantity);
  if (order.userCouponId !== null) yield* askCancel("releaseCoupon", order.userCouponId);
  if (order.paidAmount > 0) {
    const balanceAfter = yield* askCancel("creditWithinLimit", order.userId, order.paidAmount, limits.maxBalance);
    if (balanceAfter === null) throw refused.balanceLimit(limits.maxBalance, "refund");
    yield* askCancel("insertHistory", {
      userId: order.userId,
      type: "REFUND",
      amount: order.paidAmount,
      balanceAfter,
      orderId,
      createdAt: now,
    });
  }
  const cancelled = orderOf({ ...order, status: "CANCELLED", cancelledAt: now }, lines);
  if (recordEvents) yield* askCancel("recordEvent", orderCancelled(cancelled, now));
  return cancelled;
}

/**
 * Charge: user exists → replay of the same Idempotency-Key → the balance stays within its cap. Then
 * points.charged, with `recordEvents`.
 */
export function* chargePoints(
  command: ChargePoints,
  recordEvents: boolean,
): Script<ChargeStorage, Idempotent<PointBalance>> {
  const { userId, amount, now, idempotency } = command;
  if (!(yield* askCharge("userExists", userId))) throw notFound.user(userId);
  const replay = yield* replayOf(userId, idempotency);
  if (replay !== null) return replay;
  const balance = yield* askCharge("creditWithinLimit", userId, amount, limits.maxBalance);
  if (balance === null) throw refused.balanceLimit(limits.maxBalance, "charge");
  yield* askCharge("insertHistory", {
    userId,
    type: "CHARGE",
    amount,
    balanceAfter: balance,
    orderId: null,
    createdAt: now,
  });
  const value: PointBalance = { userId, balance };
  if (recordEvents) yield* askCharge("recordEvent", pointsCharged(value, now));
  yield* remember(userId, idempotency, value, now);
  return { replayed: false, value };
}
