/**
 * The data moves of the write scripts (domain/writes.ts) on PostgreSQL, inside one READ COMMITTED
 * transaction: every query is built from `tx` (a statement prepared on the pool would run outside
 * it). A guard that matched no row answers false or null; the script decides what that means.
 * Coupons are claimed the atomic way here; coupon-strategies.ts overrides the claim moves for the
 * other strategies.
 */
import { and, eq, lt, sql } from "drizzle-orm";
import type { CouponDefinition } from "../../domain/coupon.ts";
import { type ClaimEvents, claimedData, type EventType, type NewEvent } from "../../domain/events.ts";
import type { OrderLine } from "../../domain/model.ts";
import type { OrderRecord } from "../../domain/order.ts";
import type { AsyncStorage } from "../../domain/script.ts";
import type {
  ClaimRefusal,
  IdempotentRequest,
  NewHistoryEntry,
  NewHolding,
  StoredRequest,
  WriteStorage,
} from "../../domain/writes.ts";
import type { PgDb } from "./database.ts";
import {
  coupons,
  events,
  idempotencyKeys,
  orderItems,
  orders,
  pointHistory,
  products,
  userCoupons,
  users,
} from "./schema.ts";

export type Tx = Parameters<Parameters<PgDb["transaction"]>[0]>[0];

export const lineColumns = {
  productId: orderItems.productId,
  quantity: orderItems.quantity,
  unitPrice: orderItems.unitPrice,
};

export type { NewHolding };

/** The moves answered inside a transaction: claims, cancels, charges (orders: see orders.ts). */
export type TxStorage = Omit<WriteStorage, "pricesOf" | "heldCoupon" | "newOrderId" | "commitOrder">;

/** The one-per-user guard: the unique (user_id, coupon_id) index turns a second claim into no row. */
export async function insertHolding(tx: Tx, holding: NewHolding): Promise<number | null> {
  const [held] = await tx
    .insert(userCoupons)
    .values({ ...holding, status: "AVAILABLE" })
    .onConflictDoNothing({ target: [userCoupons.userId, userCoupons.couponId] })
    .returning({ id: userCoupons.id });
  return held?.id ?? null;
}

export class PgWrites implements AsyncStorage<TxStorage> {
  /** The events this transaction wrote: counted by the store once it has committed. */
  readonly written: EventType[] = [];

  constructor(protected readonly tx: Tx) {}

  async recordEvent(event: NewEvent): Promise<void> {
    await this.tx.insert(events).values(event);
    this.written.push(event.type);
  }

  /** A claim's events, once it has taken a coupon (`last`: it took the drop's last one). */
  protected async recordClaim(userCouponId: number, last: boolean, claim: ClaimEvents | null): Promise<void> {
    if (claim === null) return;
    const { occurredAt } = claim;
    await this.recordEvent({
      type: "coupon.claimed",
      occurredAt,
      data: claimedData(userCouponId, claim.claimedAfterId),
    });
    if (last) await this.recordEvent({ type: "coupon.sold_out", occurredAt, data: claim.soldOutData() });
  }

  async userExists(userId: number): Promise<boolean> {
    const [user] = await this.tx.select({ id: users.id }).from(users).where(eq(users.id, userId));
    return user !== undefined;
  }

  async insertHistory(entry: NewHistoryEntry): Promise<void> {
    await this.tx.insert(pointHistory).values(entry);
  }

  /**
   * Inserts the key first, so that two requests racing with one new key serialise on its row: the
   * second waits for the first to commit, then reads what it stored.
   */
  async storedRequest(userId: number, request: IdempotentRequest): Promise<StoredRequest | null> {
    const { key, fingerprint, statusCode } = request;
    const inserted = await this.tx
      .insert(idempotencyKeys)
      .values({ userId, key, fingerprint, statusCode, responseBody: "", createdAt: 0 })
      .onConflictDoNothing()
      .returning({ key: idempotencyKeys.key });
    if (inserted.length > 0) return null;
    const [stored] = await this.tx
      .select({
        fingerprint: idempotencyKeys.fingerprint,
        statusCode: idempotencyKeys.statusCode,
        responseBody: idempotencyKeys.responseBody,
      })
      .from(idempotencyKeys)
      .where(and(eq(idempotencyKeys.userId, userId), eq(idempotencyKeys.key, key)));
    return stored ?? null;
  }

  async storeResponse(userId: number, request: IdempotentRequest, responseBody: string, now: number): Promise<void> {
    await this.tx
      .update(idempotencyKeys)
      .set({ responseBody, createdAt: now })
      .where(and(eq(idempotencyKeys.userId, userId), eq(idempotencyKeys.key, request.key)));
  }

  async findCoupon(couponId: number): Promise<CouponDefinition | null> {
    const [coupon] = await this.tx.select().from(coupons).where(eq(coupons.id, couponId));
    return coupon ?? null;
  }

  /** Nothing known inside the transaction: the guards of takeCoupon decide (see coupon-strategies.ts). */
  async knownRefusal(): Promise<ClaimRefusal | null> {
    return null;
  }

  /**
   * The one-per-user guard (the unique (user_id, coupon_id) index turns a second claim into no row),
   * then the supply guard (`UPDATE … WHERE issued < total`: READ COMMITTED re-checks the WHERE on the
   * newest row version); a refused supply takes the holding back, so the move is all or nothing.
   */
  async takeCoupon(holding: NewHolding, claim: ClaimEvents | null): Promise<number | ClaimRefusal> {
    const held = await insertHolding(this.tx, holding);
    if (held === null) return "ALREADY_CLAIMED";
    const [taken] = await this.tx
      .update(coupons)
      .set({ issuedQuantity: sql`${coupons.issuedQuantity} + 1` })
      .where(and(eq(coupons.id, holding.couponId), lt(coupons.issuedQuantity, coupons.totalQuantity)))
      .returning({ last: sql<boolean>`${coupons.issuedQuantity} = ${coupons.totalQuantity}` });
    if (taken === undefined) {
      await this.tx.delete(userCoupons).where(eq(userCoupons.id, held));
      return "SOLD_OUT";
    }
    await this.recordClaim(held, taken.last, claim);
    return held;
  }

  async findOrder(orderId: number): Promise<OrderRecord | null> {
    const [order] = await this.tx.select().from(orders).where(eq(orders.id, orderId));
    return order ?? null;
  }

  async markCancelled(orderId: number, now: number): Promise<boolean> {
    const marked = await this.tx
      .update(orders)
      .set({ status: "CANCELLED", cancelledAt: now })
      .where(and(eq(orders.id, orderId), eq(orders.status, "PAID")))
      .returning({ id: orders.id });
    return marked.length > 0;
  }

  orderLines(orderId: number): Promise<OrderLine[]> {
    return this.tx
      .select(lineColumns)
      .from(orderItems)
      .where(eq(orderItems.orderId, orderId))
      .orderBy(orderItems.productId);
  }

  async returnStock(productId: number, quantity: number): Promise<void> {
    await this.tx
      .update(products)
      .set({ stock: sql`${products.stock} + ${quantity}` })
      .where(eq(products.id, productId));
  }

  async releaseCoupon(userCouponId: number): Promise<void> {
    await this.tx
      .update(userCoupons)
      .set({ status: "AVAILABLE", usedAt: null })
      .where(and(eq(userCoupons.id, userCouponId), eq(userCoupons.status, "USED")));
  }

  async creditWithinLimit(userId: number, amount: number, maxBalance: number): Promise<number | null> {
    const [credited] = await this.tx
      .update(users)
      .set({ balance: sql`${users.balance} + ${amount}` })
      .where(and(eq(users.id, userId), sql`${users.balance} + ${amount} <= ${maxBalance}`))
      .returning({ balance: users.balance });
    return credited?.balance ?? null;
  }
}
