/**
 * The data moves of the write scripts (domain/writes.ts) on PostgreSQL, inside one READ COMMITTED
 * transaction: every statement runs on `tx`, the transaction's connection, as a postgres.js tagged
 * template, which the driver prepares once per connection and reuses (no query is built per request).
 * bigint columns (money, epoch milliseconds) are cast to float8 where they are read, so they arrive as
 * numbers. A guard that matched no row answers false or null; the script decides what that means.
 * Coupons are claimed the atomic way here; coupon-strategies.ts overrides the claim moves for the
 * other strategies.
 */
import type postgres from "postgres";
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
import { orderItems } from "./schema.ts";

export type Tx = postgres.TransactionSql;

export const lineColumns = {
  productId: orderItems.productId,
  quantity: orderItems.quantity,
  unitPrice: orderItems.unitPrice,
};

export type { NewHolding };

/** The moves answered inside a transaction: claims, cancels, charges (orders: see orders.ts). */
export type TxStorage = Omit<WriteStorage, "pricesOf" | "heldCoupon" | "newOrderId" | "commitOrder">;

/** The one-per-user guard: the unique (user_id, coupon_id) index turns a second claim into no row. */
/**
 * A drop's definition: every column but the claimed count (the one that changes). bigint columns
 * arrive as text from postgres.js, so the timestamps and amounts are cast here, where it is said.
 */
export async function couponDefinition(sql: postgres.Sql | Tx, couponId: number): Promise<CouponDefinition | null> {
  const [coupon] = await sql<CouponDefinition[]>`
    SELECT id, name, discount_type AS "discountType", discount_value::float8 AS "discountValue",
           max_discount::float8 AS "maxDiscount", min_order_amount::float8 AS "minOrderAmount",
           issue_starts_at::float8 AS "issueStartsAt", issue_ends_at::float8 AS "issueEndsAt",
           valid_days AS "validDays", total_quantity AS "totalQuantity", created_at::float8 AS "createdAt"
    FROM coupons WHERE id = ${couponId}`;
  return coupon ?? null;
}

export async function insertHolding(tx: Tx, holding: NewHolding): Promise<number | null> {
  const { userId, couponId, issuedAt, expiresAt } = holding;
  const [held] = await tx<{ id: number }[]>`
    INSERT INTO user_coupons (user_id, coupon_id, status, issued_at, expires_at)
    VALUES (${userId}, ${couponId}, 'AVAILABLE', ${issuedAt}, ${expiresAt})
    ON CONFLICT (user_id, coupon_id) DO NOTHING RETURNING id`;
  return held?.id ?? null;
}

export class PgWrites implements AsyncStorage<TxStorage> {
  /** The events this transaction wrote: counted by the store once it has committed. */
  readonly written: EventType[] = [];

  constructor(protected readonly tx: Tx) {}

  async recordEvent(event: NewEvent): Promise<void> {
    await this
      .tx`INSERT INTO event_records (type, occurred_at, data) VALUES (${event.type}, ${event.occurredAt}, ${event.data})`;
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
    const [user] = await this.tx`SELECT 1 FROM users WHERE id = ${userId}`;
    return user !== undefined;
  }

  async insertHistory(entry: NewHistoryEntry): Promise<void> {
    const { userId, type, amount, balanceAfter, orderId, createdAt } = entry;
    await this.tx`
      INSERT INTO point_history (user_id, type, amount, balance_after, order_id, created_at)
      VALUES (${userId}, ${type}, ${amount}, ${balanceAfter}, ${orderId}, ${createdAt})`;
  }

  /**
   * Inserts the key first, so that two requests racing with one new key serialise on its row: the
   * second waits for the first to commit, then reads what it stored.
   */
  async storedRequest(userId: number, request: IdempotentRequest): Promise<StoredRequest | null> {
    const { key, fingerprint, statusCode } = request;
    const inserted = await this.tx`
      INSERT INTO idempotency_keys (user_id, key, fingerprint, status_code, response_body, created_at)
      VALUES (${userId}, ${key}, ${fingerprint}, ${statusCode}, '', 0)
      ON CONFLICT DO NOTHING RETURNING key`;
    if (inserted.length > 0) return null;
    const [stored] = await this.tx<StoredRequest[]>`
      SELECT fingerprint, status_code AS "statusCode", response_body AS "responseBody"
      FROM idempotency_keys WHERE user_id = ${userId} AND key = ${key}`;
    return stored ?? null;
  }

  async storeResponse(userId: number, request: IdempotentRequest, responseBody: string, now: number): Promise<void> {
    await this.tx`
      UPDATE idempotency_keys SET response_body = ${responseBody}, created_at = ${now}
      WHERE user_id = ${userId} AND key = ${request.key}`;
  }

  findCoupon(couponId: number): Promise<CouponDefinition | null> {
    return couponDefinition(this.tx, couponId);
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
    const [taken] = await this.tx<{ last: boolean }[]>`
      UPDATE coupons SET issued_quantity = issued_quantity + 1
      WHERE id = ${holding.couponId} AND issued_quantity < total_quantity
      RETURNING issued_quantity = total_quantity AS last`;
    if (taken === undefined) {
      await this.tx`DELETE FROM user_coupons WHERE id = ${held}`;
      return "SOLD_OUT";
    }
    await this.recordClaim(held, taken.last, claim);
    return held;
  }

  async findOrder(orderId: number): Promise<OrderRecord | null> {
    const [order] = await this.tx<OrderRecord[]>`
      SELECT id, user_id AS "userId", status, total_amount::float8 AS "totalAmount",
             discount_amount::float8 AS "discountAmount", paid_amount::float8 AS "paidAmount",
             user_coupon_id AS "userCouponId", created_at::float8 AS "createdAt",
             cancelled_at::float8 AS "cancelledAt"
      FROM orders WHERE id = ${orderId}`;
    return order ?? null;
  }

  async markCancelled(orderId: number, now: number): Promise<boolean> {
    const marked = await this.tx`
      UPDATE orders SET status = 'CANCELLED', cancelled_at = ${now}
      WHERE id = ${orderId} AND status = 'PAID' RETURNING id`;
    return marked.length > 0;
  }

  async orderLines(orderId: number): Promise<OrderLine[]> {
    return await this.tx<OrderLine[]>`
      SELECT product_id AS "productId", quantity, unit_price::float8 AS "unitPrice"
      FROM order_items WHERE order_id = ${orderId} ORDER BY product_id`;
  }

  async returnStock(productId: number, quantity: number): Promise<void> {
    await this.tx`UPDATE products SET stock = stock + ${quantity} WHERE id = ${productId}`;
  }

  async releaseCoupon(userCouponId: number): Promise<void> {
    await this.tx`
      UPDATE user_coupons SET status = 'AVAILABLE', used_at = NULL WHERE id = ${userCouponId} AND status = 'USED'`;
  }

  async creditWithinLimit(userId: number, amount: number, maxBalance: number): Promise<number | null> {
    const [credited] = await this.tx<{ balance: number }[]>`
      UPDATE users SET balance = balance + ${amount}
      WHERE id = ${userId} AND balance + ${amount} <= ${maxBalance}
      RETURNING balance::float8 AS balance`;
    return credited?.balance ?? null;
  }
}
