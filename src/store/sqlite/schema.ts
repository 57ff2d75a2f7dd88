/**
 * SQLite schema. The invariants the product promises live here, so that no code path can break them:
 * - stock, balances and counters never go negative, a coupon is never issued past its supply,
 * - one coupon per (user, coupon), one PAID order per user coupon,
 * - every point-history row belongs to its kind (a CHARGE has no order, USE/REFUND have one).
 *
 * drizzle-kit cannot express `STRICT`: the generated migrations under drizzle/sqlite are hand-edited to add
 * it (each edit is marked with a comment). If drizzle-kit ever has to rebuild a table (`__new_…`), add
 * STRICT to the rebuilt table by hand as well.
 *
 * Timestamps are integer epoch milliseconds; money is integer won.
 */
import { type SQL, sql } from "drizzle-orm";
import {
  check,
  index,
  integer,
  primaryKey,
  type SQLiteColumn,
  sqliteTable,
  text,
  uniqueIndex,
} from "drizzle-orm/sqlite-core";
import { eventTypes } from "../../domain/events.ts";

/**
 * A CHECK that a text column holds one of its enum's values, as comparisons joined by OR. Not
 * `IN (…)`: SQLite evaluates an IN list of three or more constants by building a temporary b-tree of
 * them, and in a CHECK it does so on every INSERT and UPDATE of the row (an `OpenEphemeral` in the
 * statement's program): ≈ 1.5–3.5 µs a row in a scratch benchmark here, beside ≈ 1.6–3 µs for the
 * whole insert of an event without it. Two values are compared directly either way.
 */
function oneOfItsValues(column: SQLiteColumn & { enumValues: readonly string[] | undefined }): SQL {
  const values = column.enumValues ?? [];
  if (values.length === 0) throw new Error(`oneOfItsValues: ${column.name} has no enum`);
  return sql.join(
    values.map((value) => sql`${column} = ${sql.raw(`'${value}'`)}`),
    sql` OR `,
  );
}

export const users = sqliteTable(
  "users",
  {
    id: integer("id").primaryKey(),
    name: text("name").notNull(),
    balance: integer("balance").notNull().default(0),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [
    check("users_balance_non_negative", sql`${t.balance} >= 0`),
    // limits.maxBalance: every credit (a charge, a refund) is guarded by it in the code as well.
    check("users_balance_within_cap", sql`${t.balance} <= 100000000`),
    check("users_name_length", sql`length(${t.name}) BETWEEN 1 AND 100`),
  ],
);

export const products = sqliteTable(
  "products",
  {
    id: integer("id").primaryKey(),
    name: text("name").notNull(),
    price: integer("price").notNull(),
    stock: integer("stock").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [
    check("products_price_positive", sql`${t.price} > 0`),
    check("products_stock_non_negative", sql`${t.stock} >= 0`),
  ],
);

export const coupons = sqliteTable(
  "coupons",
  {
    id: integer("id").primaryKey(),
    name: text("name").notNull(),
    discountType: text("discount_type", { enum: ["FIXED", "PERCENT"] }).notNull(),
    discountValue: integer("discount_value").notNull(),
    maxDiscount: integer("max_discount"),
    minOrderAmount: integer("min_order_amount").notNull().default(0),
    issueStartsAt: integer("issue_starts_at"),
    issueEndsAt: integer("issue_ends_at"),
    validDays: integer("valid_days").notNull(),
    totalQuantity: integer("total_quantity").notNull(),
    issuedQuantity: integer("issued_quantity").notNull().default(0),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [
    check("coupons_discount_type", sql`${t.discountType} IN ('FIXED', 'PERCENT')`),
    check(
      "coupons_discount_value",
      sql`${t.discountValue} > 0 AND (${t.discountType} <> 'PERCENT' OR ${t.discountValue} <= 100)`,
    ),
    check("coupons_issued_within_total", sql`${t.issuedQuantity} >= 0 AND ${t.issuedQuantity} <= ${t.totalQuantity}`),
    check("coupons_valid_days_positive", sql`${t.validDays} > 0`),
  ],
);

export const userCoupons = sqliteTable(
  "user_coupons",
  {
    id: integer("id").primaryKey(),
    userId: integer("user_id")
      .notNull()
      .references(() => users.id),
    couponId: integer("coupon_id")
      .notNull()
      .references(() => coupons.id),
    status: text("status", { enum: ["AVAILABLE", "USED"] }).notNull(),
    issuedAt: integer("issued_at").notNull(),
    expiresAt: integer("expires_at").notNull(),
    usedAt: integer("used_at"),
  },
  (t) => [
    uniqueIndex("user_coupons_user_coupon_unique").on(t.userId, t.couponId),
    check("user_coupons_status", sql`${t.status} IN ('AVAILABLE', 'USED')`),
    check("user_coupons_used_at_matches_status", sql`(${t.status} = 'USED') = (${t.usedAt} IS NOT NULL)`),
  ],
);

export const orders = sqliteTable(
  "orders",
  {
    id: integer("id").primaryKey(),
    userId: integer("user_id")
      .notNull()
      .references(() => users.id),
    status: text("status", { enum: ["PAID", "CANCELLED"] }).notNull(),
    totalAmount: integer("total_amount").notNull(),
    discountAmount: integer("discount_amount").notNull(),
    paidAmount: integer("paid_amount").notNull(),
    userCouponId: integer("user_coupon_id").references(() => userCoupons.id),
    createdAt: integer("created_at").notNull(),
    cancelledAt: integer("cancelled_at"),
  },
  (t) => [
    index("orders_user_id_idx").on(t.userId, t.id),
    // The popular-products query scans PAID orders of the last N days.
    index("orders_status_created_at_idx").on(t.status, t.createdAt),
    // A user coupon pays for at most one live order.
    uniqueIndex("orders_paid_user_coupon_unique")
      .on(t.userCouponId)
      .where(sql`${t.status} = 'PAID' AND ${t.userCouponId} IS NOT NULL`),
    check("orders_status", sql`${t.status} IN ('PAID', 'CANCELLED')`),
    check(
      "orders_amounts",
      sql`${t.totalAmount} > 0 AND ${t.discountAmount} >= 0 AND ${t.discountAmount} <= ${t.totalAmount} AND ${t.paidAmount} = ${t.totalAmount} - ${t.discountAmount}`,
    ),
    check("orders_cancelled_at_matches_status", sql`(${t.status} = 'CANCELLED') = (${t.cancelledAt} IS NOT NULL)`),
  ],
);

export const orderItems = sqliteTable(
  "order_items",
  {
    orderId: integer("order_id")
      .notNull()
      .references(() => orders.id),
    productId: integer("product_id")
      .notNull()
      .references(() => products.id),
    quantity: integer("quantity").notNull(),
    unitPrice: integer("unit_price").notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.orderId, t.productId] }),
    // No index on product_id: nothing looks order items up by product alone (best sellers go through
    // orders by date), products are never deleted, and the index cost a quarter of order throughput.
    check("order_items_quantity", sql`${t.quantity} BETWEEN 1 AND 100`),
    check("order_items_unit_price_positive", sql`${t.unitPrice} > 0`),
  ],
);

export const pointHistory = sqliteTable(
  "point_history",
  {
    id: integer("id").primaryKey(),
    userId: integer("user_id")
      .notNull()
      .references(() => users.id),
    type: text("type", { enum: ["CHARGE", "USE", "REFUND"] }).notNull(),
    amount: integer("amount").notNull(),
    balanceAfter: integer("balance_after").notNull(),
    orderId: integer("order_id").references(() => orders.id),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [
    index("point_history_user_id_idx").on(t.userId, t.id),
    check("point_history_type", oneOfItsValues(t.type)),
    check("point_history_amount_positive", sql`${t.amount} > 0`),
    check("point_history_balance_after_non_negative", sql`${t.balanceAfter} >= 0`),
    check("point_history_order_matches_type", sql`(${t.type} = 'CHARGE') = (${t.orderId} IS NULL)`),
  ],
);

/** Stored responses of requests sent with an `Idempotency-Key`, written in the same transaction as their effect. */
export const idempotencyKeys = sqliteTable(
  "idempotency_keys",
  {
    userId: integer("user_id")
      .notNull()
      .references(() => users.id),
    key: text("key").notNull(),
    fingerprint: text("fingerprint").notNull(),
    statusCode: integer("status_code").notNull(),
    responseBody: text("response_body").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.userId, t.key] }), index("idempotency_keys_created_at_idx").on(t.createdAt)],
);

/**
 * The outbox (domain/events.ts): the events of each committed write, written in its transaction. `id`
 * is the rowid, the largest so far plus one, given by one writer at a time under the write lock: ids
 * increase in commit order. Retention never deletes the newest event, so an id is never given twice.
 * (AUTOINCREMENT would keep that promise by itself, for an extra write per insert: a measurable part
 * of an order's cost.)
 */
export const events = sqliteTable(
  "events",
  {
    id: integer("id").primaryKey(),
    type: text("type", { enum: eventTypes }).notNull(),
    occurredAt: integer("occurred_at").notNull(),
    data: text("data").notNull(),
  },
  (t) => [check("events_type", oneOfItsValues(t.type))],
);

/** For each sink the relay pushes to, the last event it received: retention keeps every event past it. */
export const eventSinks = sqliteTable("event_sinks", {
  sink: text("sink").primaryKey(),
  deliveredId: integer("delivered_id").notNull().default(0),
});
