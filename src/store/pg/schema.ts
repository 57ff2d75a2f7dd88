/**
 * PostgreSQL schema: the same tables, names and invariants as src/store/sqlite/schema.ts, so both
 * backends refuse the same broken states. Money and timestamps (epoch milliseconds) are bigint, read
 * as JavaScript numbers: every cap keeps them far below 2^53.
 */
import { sql } from "drizzle-orm";
import {
  bigint,
  check,
  customType,
  index,
  integer,
  pgTable,
  pgView,
  primaryKey,
  text,
  uniqueIndex,
} from "drizzle-orm/pg-core";
import type { EventType } from "../../domain/events.ts";

const money = (name: string) => bigint(name, { mode: "number" });
const millis = (name: string) => bigint(name, { mode: "number" });

export const users = pgTable(
  "users",
  {
    id: integer("id").primaryKey().generatedAlwaysAsIdentity(),
    name: text("name").notNull(),
    balance: money("balance").notNull().default(0),
    createdAt: millis("created_at").notNull(),
  },
  (t) => [
    check("users_balance_non_negative", sql`${t.balance} >= 0`),
    // limits.maxBalance: every credit (a charge, a refund) is guarded by it in the code as well.
    check("users_balance_within_cap", sql`${t.balance} <= 100000000`),
    check("users_name_length", sql`char_length(${t.name}) BETWEEN 1 AND 100`),
  ],
);

export const products = pgTable(
  "products",
  {
    id: integer("id").primaryKey().generatedAlwaysAsIdentity(),
    name: text("name").notNull(),
    price: money("price").notNull(),
    stock: integer("stock").notNull(),
    createdAt: millis("created_at").notNull(),
  },
  (t) => [
    check("products_price_positive", sql`${t.price} > 0`),
    check("products_stock_non_negative", sql`${t.stock} >= 0`),
  ],
);

export const coupons = pgTable(
  "coupons",
  {
    id: integer("id").primaryKey().generatedAlwaysAsIdentity(),
    name: text("name").notNull(),
    discountType: text("discount_type", { enum: ["FIXED", "PERCENT"] }).notNull(),
    discountValue: money("discount_value").notNull(),
    maxDiscount: money("max_discount"),
    minOrderAmount: money("min_order_amount").notNull().default(0),
    issueStartsAt: millis("issue_starts_at"),
    issueEndsAt: millis("issue_ends_at"),
    validDays: integer("valid_days").notNull(),
    totalQuantity: integer("total_quantity").notNull(),
    issuedQuantity: integer("issued_quantity").notNull().default(0),
    /** Compare-and-set version for the optimistic strategy. */
    version: integer("version").notNull().default(0),
    createdAt: millis("created_at").notNull(),
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

export const userCoupons = pgTable(
  "user_coupons",
  {
    id: integer("id").primaryKey().generatedAlwaysAsIdentity(),
    userId: integer("user_id")
      .notNull()
      .references(() => users.id),
    couponId: integer("coupon_id")
      .notNull()
      .references(() => coupons.id),
    status: text("status", { enum: ["AVAILABLE", "USED"] }).notNull(),
    issuedAt: millis("issued_at").notNull(),
    expiresAt: millis("expires_at").notNull(),
    usedAt: millis("used_at"),
  },
  (t) => [
    uniqueIndex("user_coupons_user_coupon_unique").on(t.userId, t.couponId),
    check("user_coupons_status", sql`${t.status} IN ('AVAILABLE', 'USED')`),
    check("user_coupons_used_at_matches_status", sql`(${t.status} = 'USED') = (${t.usedAt} IS NOT NULL)`),
  ],
);

export const orders = pgTable(
  "orders",
  {
    id: integer("id").primaryKey().generatedAlwaysAsIdentity(),
    userId: integer("user_id")
      .notNull()
      .references(() => users.id),
    status: text("status", { enum: ["PAID", "CANCELLED"] }).notNull(),
    totalAmount: money("total_amount").notNull(),
    discountAmount: money("discount_amount").notNull(),
    paidAmount: money("paid_amount").notNull(),
    userCouponId: integer("user_coupon_id").references(() => userCoupons.id),
    createdAt: millis("created_at").notNull(),
    cancelledAt: millis("cancelled_at"),
  },
  (t) => [
    index("orders_user_id_idx").on(t.userId, t.id),
    index("orders_status_created_at_idx").on(t.status, t.createdAt),
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

export const orderItems = pgTable(
  "order_items",
  {
    orderId: integer("order_id")
      .notNull()
      .references(() => orders.id),
    productId: integer("product_id")
      .notNull()
      .references(() => products.id),
    quantity: integer("quantity").notNull(),
    unitPrice: money("unit_price").notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.orderId, t.productId] }),
    check("order_items_quantity", sql`${t.quantity} BETWEEN 1 AND 100`),
    check("order_items_unit_price_positive", sql`${t.unitPrice} > 0`),
  ],
);

export const pointHistory = pgTable(
  "point_history",
  {
    id: integer("id").primaryKey().generatedAlwaysAsIdentity(),
    userId: integer("user_id")
      .notNull()
      .references(() => users.id),
    type: text("type", { enum: ["CHARGE", "USE", "REFUND"] }).notNull(),
    amount: money("amount").notNull(),
    balanceAfter: money("balance_after").notNull(),
    orderId: integer("order_id").references(() => orders.id),
    createdAt: millis("created_at").notNull(),
  },
  (t) => [
    index("point_history_user_id_idx").on(t.userId, t.id),
    check("point_history_type", sql`${t.type} IN ('CHARGE', 'USE', 'REFUND')`),
    check("point_history_amount_positive", sql`${t.amount} > 0`),
    check("point_history_balance_after_non_negative", sql`${t.balanceAfter} >= 0`),
    check("point_history_order_matches_type", sql`(${t.type} = 'CHARGE') = (${t.orderId} IS NULL)`),
  ],
);

export const idempotencyKeys = pgTable(
  "idempotency_keys",
  {
    userId: integer("user_id")
      .notNull()
      .references(() => users.id),
    key: text("key").notNull(),
    fingerprint: text("fingerprint").notNull(),
    statusCode: integer("status_code").notNull(),
    responseBody: text("response_body").notNull(),
    createdAt: millis("created_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.userId, t.key] }), index("idempotency_keys_created_at_idx").on(t.createdAt)],
);

/**
 * An event's type: text, one of eventTypes, checked by the domain `event_type` (drizzle/pg/0010: a
 * domain's check is prepared once per connection, a table's CHECK again for every inserting statement).
 */
const eventType = customType<{ data: EventType }>({ dataType: () => "event_type" });

/**
 * The outbox (domain/events.ts), in two tables and a view (drizzle/pg/0010).
 *
 * A write inserts its events into `event_records` with a `seq` and no public id: sequence values are
 * handed out as transactions insert, not as they commit (the one holding seq 5 can commit after the
 * one holding 6), so a reader paging by `seq` could pass 5 before it commits and never see it. The
 * public id is given later by the sequencer (sequence_events()), one at a time, to committed records
 * in seq order, as a row of `event_order`: once an id can be read, every smaller one can too. The
 * records are never updated: the id lives in its own narrow row, so giving it costs an insert of
 * two numbers, not a second copy of the record (see 0010 for what that measured).
 *
 * `seq`'s default takes the writing transaction's id before the sequence's next value (the
 * sequencer relies on it, see 0010); writes never give `seq` themselves.
 */
export const eventRecords = pgTable("event_records", {
  seq: bigint("seq", { mode: "number" })
    .primaryKey()
    .default(sql`CASE WHEN pg_current_xact_id() IS NOT NULL THEN nextval('event_seqs'::regclass) END`),
  type: eventType("type").notNull(),
  occurredAt: millis("occurred_at").notNull(),
  data: text("data").notNull(),
});

/** Each sequenced record's public id: the feed pages by `id`, the sequencer finds records without one by `seq`. */
export const eventOrder = pgTable(
  "event_order",
  {
    id: bigint("id", { mode: "number" }).primaryKey(),
    seq: bigint("seq", { mode: "number" }).notNull(),
  },
  (t) => [uniqueIndex("event_order_seq_unique").on(t.seq), check("event_order_id_positive", sql`${t.id} > 0`)],
);

/** The events as one relation, as SQLite has them: records not sequenced yet have a null id. For reading. */
export const events = pgView("events", {
  seq: bigint("seq", { mode: "number" }).notNull(),
  id: bigint("id", { mode: "number" }),
  type: eventType("type").notNull(),
  occurredAt: millis("occurred_at").notNull(),
  data: text("data").notNull(),
}).existing();

const xid8 = customType<{ data: string }>({ dataType: () => "xid8" });

/**
 * The sequencer's state, in one row. `last_id`: the last public id given (ids keep increasing even
 * once retention has deleted every event). `settled_seq`: every record with a seq up to it has an id,
 * or never will exist (its transaction rolled back), so the sequencer looks only above it.
 * `candidate_seq`, `candidate_xmax`: the last seq handed out when a sequencer call began, and the
 * transaction id that call was given afterwards: once no transaction below `candidate_xmax` is still
 * running, `candidate_seq` can be settled.
 */
export const eventIds = pgTable(
  "event_ids",
  {
    id: integer("id").primaryKey().default(1),
    lastId: bigint("last_id", { mode: "number" }).notNull().default(0),
    settledSeq: bigint("settled_seq", { mode: "number" }).notNull().default(0),
    candidateSeq: bigint("candidate_seq", { mode: "number" }).notNull().default(0),
    candidateXmax: xid8("candidate_xmax"),
  },
  (t) => [check("event_ids_one_row", sql`${t.id} = 1`)],
);

/** For each sink the relay pushes to, the last event it received: retention keeps every event past it. */
export const eventSinks = pgTable("event_sinks", {
  sink: text("sink").primaryKey(),
  deliveredId: bigint("delivered_id", { mode: "number" }).notNull().default(0),
});
