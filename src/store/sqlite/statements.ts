/**
 * Every SQL statement of the SQLite store, prepared once when the store is built: building a query
 * per request costs more than running it (drizzle's builder ≈ 23 µs, a prepared statement < 1 µs).
 */
import { and, asc, desc, eq, gt, gte, lt, sql } from "drizzle-orm";
import type { SqliteDb } from "./database.ts";
import {
  coupons,
  eventSinks,
  events,
  idempotencyKeys,
  orderItems,
  orders,
  pointHistory,
  products,
  userCoupons,
  users,
} from "./schema.ts";

const p = sql.placeholder;

export function prepareStatements(db: SqliteDb) {
  return {
    insertUser: db
      .insert(users)
      .values({ name: p("name"), balance: 0, createdAt: p("now") })
      .returning({ id: users.id, name: users.name, balance: users.balance })
      .prepare(),
    userById: db
      .select({ id: users.id, name: users.name, balance: users.balance })
      .from(users)
      .where(eq(users.id, p("id")))
      .prepare(),
    creditWithinLimit: db
      .update(users)
      .set({ balance: sql`${users.balance} + ${p("amount")}` })
      .where(and(eq(users.id, p("id")), sql`${users.balance} + ${p("amount")} <= ${p("maxBalance")}`))
      .returning({ balance: users.balance })
      .prepare(),
    debitIfCovered: db
      .update(users)
      .set({ balance: sql`${users.balance} - ${p("amount")}` })
      .where(and(eq(users.id, p("id")), gte(users.balance, p("amount"))))
      .returning({ balance: users.balance })
      .prepare(),
    insertHistory: db
      .insert(pointHistory)
      .values({
        userId: p("userId"),
        type: p("type"),
        amount: p("amount"),
        balanceAfter: p("balanceAfter"),
        orderId: p("orderId"),
        createdAt: p("now"),
      })
      .prepare(),
    historyPage: db
      .select()
      .from(pointHistory)
      .where(and(eq(pointHistory.userId, p("userId")), lt(pointHistory.id, p("before"))))
      .orderBy(desc(pointHistory.id))
      .limit(p("limit"))
      .prepare(),

    idempotencyByKey: db
      .select({
        fingerprint: idempotencyKeys.fingerprint,
        statusCode: idempotencyKeys.statusCode,
        responseBody: idempotencyKeys.responseBody,
      })
      .from(idempotencyKeys)
      .where(and(eq(idempotencyKeys.userId, p("userId")), eq(idempotencyKeys.key, p("key"))))
      .prepare(),
    insertIdempotency: db
      .insert(idempotencyKeys)
      .values({
        userId: p("userId"),
        key: p("key"),
        fingerprint: p("fingerprint"),
        statusCode: p("statusCode"),
        responseBody: p("responseBody"),
        createdAt: p("now"),
      })
      .prepare(),
    purgeIdempotency: db
      .delete(idempotencyKeys)
      .where(lt(idempotencyKeys.createdAt, p("before")))
      .prepare(),

    insertProduct: db
      .insert(products)
      .values({ name: p("name"), price: p("price"), stock: p("stock"), createdAt: p("now") })
      .returning({ id: products.id, name: products.name, price: products.price, stock: products.stock })
      .prepare(),
    productPrice: db
      .select({ price: products.price })
      .from(products)
      .where(eq(products.id, p("id")))
      .prepare(),
    productById: db
      .select({ id: products.id, name: products.name, price: products.price, stock: products.stock })
      .from(products)
      .where(eq(products.id, p("id")))
      .prepare(),
    productsPage: db
      .select({ id: products.id, name: products.name, price: products.price, stock: products.stock })
      .from(products)
      .where(gt(products.id, p("after")))
      .orderBy(asc(products.id))
      .limit(p("limit"))
      .prepare(),
    takeStock: db
      .update(products)
      .set({ stock: sql`${products.stock} - ${p("quantity")}` })
      .where(and(eq(products.id, p("id")), gte(products.stock, p("quantity"))))
      .prepare(),
    returnStock: db
      .update(products)
      .set({ stock: sql`${products.stock} + ${p("quantity")}` })
      .where(eq(products.id, p("id")))
      .prepare(),
    popular: db
      .select({
        productId: products.id,
        name: products.name,
        price: products.price,
        soldQuantity: sql<number>`sum(${orderItems.quantity})`.mapWith(Number),
      })
      .from(orders)
      .innerJoin(orderItems, eq(orderItems.orderId, orders.id))
      .innerJoin(products, eq(products.id, orderItems.productId))
      .where(and(eq(orders.status, "PAID"), gte(orders.createdAt, p("since"))))
      .groupBy(products.id)
      .orderBy(desc(sql`sum(${orderItems.quantity})`), asc(products.id))
      .limit(p("limit"))
      .prepare(),

    insertCoupon: db
      .insert(coupons)
      .values({
        name: p("name"),
        discountType: p("discountType"),
        discountValue: p("discountValue"),
        maxDiscount: p("maxDiscount"),
        minOrderAmount: p("minOrderAmount"),
        issueStartsAt: p("issueStartsAt"),
        issueEndsAt: p("issueEndsAt"),
        validDays: p("validDays"),
        totalQuantity: p("totalQuantity"),
        issuedQuantity: 0,
        createdAt: p("now"),
      })
      .returning()
      .prepare(),
    couponById: db
      .select()
      .from(coupons)
      .where(eq(coupons.id, p("id")))
      .prepare(),
    /** The refusals that never revert: "this user holds it", "none left". */
    holds: db
      .select({ id: userCoupons.id })
      .from(userCoupons)
      .where(and(eq(userCoupons.userId, p("userId")), eq(userCoupons.couponId, p("couponId"))))
      .prepare(),
    soldOut: db
      .select({ id: coupons.id })
      .from(coupons)
      .where(and(eq(coupons.id, p("id")), gte(coupons.issuedQuantity, coupons.totalQuantity)))
      .prepare(),
    /** Every holder of a drop: read once it is sold out, when the list can no longer change. */
    holdersOf: db
      .select({ userId: userCoupons.userId })
      .from(userCoupons)
      .where(eq(userCoupons.couponId, p("couponId")))
      .prepare(),
    deleteHolding: db
      .delete(userCoupons)
      .where(eq(userCoupons.id, p("id")))
      .prepare(),
    /** The first-come guard: a slot is taken only while one is left. `last`: 1 when it was the last one. */
    takeSlot: db
      .update(coupons)
      .set({ issuedQuantity: sql`${coupons.issuedQuantity} + 1` })
      .where(and(eq(coupons.id, p("id")), lt(coupons.issuedQuantity, coupons.totalQuantity)))
      .returning({ last: sql<number>`${coupons.issuedQuantity} = ${coupons.totalQuantity}` })
      .prepare(),
    /** The one-per-user guard: the unique (user_id, coupon_id) index turns a second claim into no row. */
    insertUserCoupon: db
      .insert(userCoupons)
      .values({
        userId: p("userId"),
        couponId: p("couponId"),
        status: "AVAILABLE",
        issuedAt: p("now"),
        expiresAt: p("expiresAt"),
      })
      .onConflictDoNothing({ target: [userCoupons.userId, userCoupons.couponId] })
      .returning({ id: userCoupons.id })
      .prepare(),
    userCouponsOf: db
      .select({ held: userCoupons, coupon: coupons })
      .from(userCoupons)
      .innerJoin(coupons, eq(coupons.id, userCoupons.couponId))
      .where(eq(userCoupons.userId, p("userId")))
      .orderBy(asc(userCoupons.id))
      .prepare(),
    heldCoupon: db
      .select({ held: userCoupons, coupon: coupons })
      .from(userCoupons)
      .innerJoin(coupons, eq(coupons.id, userCoupons.couponId))
      .where(eq(userCoupons.id, p("id")))
      .prepare(),
    useCoupon: db
      .update(userCoupons)
      .set({ status: "USED", usedAt: sql`${p("now")}` })
      .where(and(eq(userCoupons.id, p("id")), eq(userCoupons.status, "AVAILABLE")))
      .prepare(),
    releaseCoupon: db
      .update(userCoupons)
      .set({ status: "AVAILABLE", usedAt: null })
      .where(and(eq(userCoupons.id, p("id")), eq(userCoupons.status, "USED")))
      .prepare(),

    /** Orders are numbered max + 1, as SQLite numbers a rowid: the id is known before the insert. */
    nextOrderId: db
      .select({ id: sql<number>`coalesce(max(${orders.id}), 0) + 1` })
      .from(orders)
      .prepare(),
    insertOrder: db
      .insert(orders)
      .values({
        id: p("id"),
        userId: p("userId"),
        status: "PAID",
        totalAmount: p("totalAmount"),
        discountAmount: p("discountAmount"),
        paidAmount: p("paidAmount"),
        userCouponId: p("userCouponId"),
        createdAt: p("now"),
      })
      .prepare(),
    insertOrderItem: db
      .insert(orderItems)
      .values({ orderId: p("orderId"), productId: p("productId"), quantity: p("quantity"), unitPrice: p("unitPrice") })
      .prepare(),
    orderById: db
      .select()
      .from(orders)
      .where(eq(orders.id, p("id")))
      .prepare(),
    orderLines: db
      .select({ productId: orderItems.productId, quantity: orderItems.quantity, unitPrice: orderItems.unitPrice })
      .from(orderItems)
      .where(eq(orderItems.orderId, p("orderId")))
      .orderBy(asc(orderItems.productId))
      .prepare(),
    ordersPage: db
      .select()
      .from(orders)
      .where(and(eq(orders.userId, p("userId")), lt(orders.id, p("before"))))
      .orderBy(desc(orders.id))
      .limit(p("limit"))
      .prepare(),
    markCancelled: db
      .update(orders)
      .set({ status: "CANCELLED", cancelledAt: sql`${p("now")}` })
      .where(and(eq(orders.id, p("id")), eq(orders.status, "PAID")))
      .prepare(),

    insertEvent: db
      .insert(events)
      .values({ type: p("type"), occurredAt: p("occurredAt"), data: p("data") })
      .prepare(),
    eventsAfter: db
      .select()
      .from(events)
      .where(gt(events.id, p("after")))
      .orderBy(asc(events.id))
      .limit(p("limit"))
      .prepare(),
    deliveredTo: db
      .select({ id: eventSinks.deliveredId })
      .from(eventSinks)
      .where(eq(eventSinks.sink, p("sink")))
      .prepare(),
    /** A sink's cursor only moves forward. */
    markDelivered: db
      .insert(eventSinks)
      .values({ sink: p("sink"), deliveredId: p("id") })
      .onConflictDoUpdate({
        target: eventSinks.sink,
        set: { deliveredId: sql`max(${eventSinks.deliveredId}, excluded.delivered_id)` },
      })
      .prepare(),
    /**
     * Retention, a bounded chunk at a time, so that the write lock is never held long. The newest
     * event stays: the next id is the largest plus one (see schema.ts).
     */
    purgeEvents: db
      .delete(events)
      .where(
        sql`${events.id} IN (SELECT id FROM events WHERE id <= ${p("upTo")} AND id < (SELECT max(id) FROM events) AND occurred_at < ${p("before")} ORDER BY id LIMIT ${p("limit")})`,
      )
      .prepare(),

    latestMigration: db.$client.prepare('SELECT max(created_at) AS at FROM "__drizzle_migrations"'),
  };
}

export type Statements = ReturnType<typeof prepareStatements>;
