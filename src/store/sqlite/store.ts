import type { Changes } from "bun:sqlite";
import { and, asc, desc, eq, gt, gte, lt, sql } from "drizzle-orm";
import { assertCouponUsable, assertIssuable, expiryOf, type HeldCoupon } from "../../domain/coupon.ts";
import { DomainError, notFound } from "../../domain/errors.ts";
import { limits } from "../../domain/limits.ts";
import type {
  ClaimedCoupon,
  Coupon,
  NewCoupon,
  Order,
  OrderLine,
  Page,
  PageRequest,
  PointBalance,
  PointHistoryEntry,
  PopularProduct,
  Product,
  User,
  UserCouponStatus,
  UserCouponWithCoupon,
} from "../../domain/model.ts";
import { assertCancellable, linesInLockOrder, orderTotal, settle } from "../../domain/order.ts";
import { toPage } from "../../domain/pagination.ts";
import { isoOf } from "../../domain/time.ts";
import { assertMigrated } from "../migrations.ts";
import type { ChargePoints, Idempotent, IdempotentRequest, PlaceOrder, Store } from "../port.ts";
import { type CouponRow, toClaimedCoupon, toCoupon, toHeldCoupon, toOrder } from "../rows.ts";
import type { SqliteDb } from "./database.ts";
import { GroupCommit } from "./group-commit.ts";
import { coupons, idempotencyKeys, orderItems, orders, pointHistory, products, userCoupons, users } from "./schema.ts";

const p = sql.placeholder;
/** Keyset cursors: "before the largest id" and "after id 0" let one prepared statement serve the first page too. */
const NO_UPPER_BOUND = Number.MAX_SAFE_INTEGER;

/** drizzle types a prepared bun-sqlite `run()` as void; at run time it is bun:sqlite's `Changes`. */
function changesOf(result: unknown): number {
  return (result as Changes).changes;
}

/**
 * Every statement is prepared once, when the store is built: building a query per request costs more
 * than the query itself. Write methods hand one synchronous unit of work to GroupCommit, which runs it
 * inside a `BEGIN IMMEDIATE` transaction: no `await` inside, and the write lock is taken up front so
 * writers in other processes queue on busy_timeout instead of failing with SQLITE_BUSY.
 */
function prepareStatements(db: SqliteDb) {
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
    credit: db
      .update(users)
      .set({ balance: sql`${users.balance} + ${p("amount")}` })
      .where(eq(users.id, p("id")))
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
    /** The first-come guard: a slot is taken only while one is left. */
    takeCouponSlot: db
      .update(coupons)
      .set({ issuedQuantity: sql`${coupons.issuedQuantity} + 1` })
      .where(and(eq(coupons.id, p("id")), lt(coupons.issuedQuantity, coupons.totalQuantity)))
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

    insertOrder: db
      .insert(orders)
      .values({
        userId: p("userId"),
        status: "PAID",
        totalAmount: p("totalAmount"),
        discountAmount: p("discountAmount"),
        paidAmount: p("paidAmount"),
        userCouponId: p("userCouponId"),
        createdAt: p("now"),
      })
      .returning({ id: orders.id })
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

    latestMigration: db.$client.prepare('SELECT max(created_at) AS at FROM "__drizzle_migrations"'),
  };
}

export class SqliteStore implements Store {
  private readonly q: ReturnType<typeof prepareStatements>;

  private readonly commits: GroupCommit;

  constructor(private readonly db: SqliteDb) {
    this.q = prepareStatements(db);
    this.commits = new GroupCommit(db.$client);
  }

  /**
   * One synchronous unit of write work, committed with the others of this event-loop turn in a single
   * `BEGIN IMMEDIATE` transaction (see GroupCommit). A throw rolls back this unit's effects only.
   */
  private write<T>(work: () => T): Promise<T> {
    return this.commits.run(work);
  }

  /** Returns the stored response of an earlier identical request, or null when this key is new. */
  private priorResponse(userId: number, claim: IdempotentRequest | null): { statusCode: number; body: string } | null {
    if (claim === null) return null;
    const prior = this.q.idempotencyByKey.get({ userId, key: claim.key });
    if (prior === undefined) return null;
    if (prior.fingerprint !== claim.fingerprint) {
      throw new DomainError(
        "IDEMPOTENCY_KEY_REUSED",
        "This Idempotency-Key was already used for a different request; use a new key for a new request.",
      );
    }
    return { statusCode: prior.statusCode, body: prior.responseBody };
  }

  private remember(userId: number, claim: IdempotentRequest | null, value: unknown, now: number): void {
    if (claim === null) return;
    this.q.insertIdempotency.run({
      userId,
      key: claim.key,
      fingerprint: claim.fingerprint,
      statusCode: claim.statusCode,
      responseBody: JSON.stringify(value),
      now,
    });
  }

  private requireUser(userId: number): User {
    const user = this.q.userById.get({ id: userId });
    if (user === undefined) throw notFound.user(userId);
    return user;
  }

  async createUser(name: string, now: number): Promise<User> {
    return this.write(() => this.q.insertUser.get({ name, now }) as User);
  }

  async getUser(userId: number): Promise<User> {
    return this.requireUser(userId);
  }

  async chargePoints(command: ChargePoints): Promise<Idempotent<PointBalance>> {
    const { userId, amount, now, idempotency } = command;
    return this.write(() => {
      const prior = this.priorResponse(userId, idempotency);
      if (prior !== null) return { replayed: true, ...prior };
      const credited = this.q.creditWithinLimit.get({ id: userId, amount, maxBalance: limits.maxBalance });
      if (credited === undefined) {
        this.requireUser(userId);
        throw new DomainError(
          "BALANCE_LIMIT_EXCEEDED",
          `A balance may not exceed ${limits.maxBalance} points; this charge would pass it.`,
        );
      }
      this.q.insertHistory.run({
        userId,
        type: "CHARGE",
        amount,
        balanceAfter: credited.balance,
        orderId: null,
        now,
      });
      const value: PointBalance = { userId, balance: credited.balance };
      this.remember(userId, idempotency, value, now);
      return { replayed: false, value };
    });
  }

  async listPointHistory(userId: number, page: PageRequest): Promise<Page<PointHistoryEntry>> {
    this.requireUser(userId);
    const rows = this.q.historyPage.all({ userId, before: page.after ?? NO_UPPER_BOUND, limit: page.limit + 1 });
    const entries = rows.map(
      (row): PointHistoryEntry => ({
        id: row.id,
        type: row.type,
        amount: row.amount,
        balanceAfter: row.balanceAfter,
        orderId: row.orderId,
        createdAt: isoOf(row.createdAt),
      }),
    );
    return toPage(entries, page.limit, (entry) => entry.id);
  }

  async createProduct(input: { name: string; price: number; stock: number }, now: number): Promise<Product> {
    return this.write(() => this.q.insertProduct.get({ ...input, now }) as Product);
  }

  async getProduct(productId: number): Promise<Product> {
    const product = this.q.productById.get({ id: productId });
    if (product === undefined) throw notFound.product(productId);
    return product;
  }

  async listProducts(page: PageRequest): Promise<Page<Product>> {
    const rows = this.q.productsPage.all({ after: page.after ?? 0, limit: page.limit + 1 });
    return toPage(rows, page.limit, (product) => product.id);
  }

  async popularProducts(query: { since: number; limit: number }): Promise<PopularProduct[]> {
    return this.q.popular.all(query);
  }

  async createCoupon(input: NewCoupon, now: number): Promise<Coupon> {
    return this.write(() => toCoupon(this.q.insertCoupon.get({ ...input, now }) as CouponRow));
  }

  async getCoupon(couponId: number): Promise<Coupon> {
    const row = this.q.couponById.get({ id: couponId });
    if (row === undefined) throw notFound.coupon(couponId);
    return toCoupon(row);
  }

  async claimCoupon(command: { userId: number; couponId: number; now: number }): Promise<ClaimedCoupon> {
    const { userId, couponId, now } = command;
    return this.write(() => {
      const coupon = this.q.couponById.get({ id: couponId });
      if (coupon === undefined) throw notFound.coupon(couponId);
      this.requireUser(userId);
      assertIssuable(coupon, now);
      const expiresAt = expiryOf(now, coupon.validDays);
      const inserted = this.q.insertUserCoupon.get({ userId, couponId, now, expiresAt });
      if (inserted === undefined) {
        throw new DomainError("COUPON_ALREADY_ISSUED", "This user already holds this coupon.");
      }
      if (changesOf(this.q.takeCouponSlot.run({ id: couponId })) === 0) {
        throw new DomainError("COUPON_SOLD_OUT", "Every coupon of this drop has been issued.");
      }
      return {
        id: inserted.id,
        userId,
        couponId,
        status: "AVAILABLE",
        issuedAt: isoOf(now),
        expiresAt: isoOf(expiresAt),
        usedAt: null,
      };
    });
  }

  async listUserCoupons(query: {
    userId: number;
    status: UserCouponStatus | null;
    now: number;
  }): Promise<UserCouponWithCoupon[]> {
    this.requireUser(query.userId);
    const items: UserCouponWithCoupon[] = [];
    for (const row of this.q.userCouponsOf.all({ userId: query.userId })) {
      const issued = toClaimedCoupon(row.held, query.now);
      if (query.status === null || issued.status === query.status)
        items.push({ ...issued, coupon: toCoupon(row.coupon) });
    }
    return items;
  }

  async placeOrder(command: PlaceOrder): Promise<Idempotent<Order>> {
    const { userId, userCouponId, now, idempotency } = command;
    return this.write((): Idempotent<Order> => {
      const prior = this.priorResponse(userId, idempotency);
      if (prior !== null) return { replayed: true, ...prior };
      this.requireUser(userId);

      const lines: OrderLine[] = linesInLockOrder(command.items).map(({ productId, quantity }) => {
        const product = this.q.productById.get({ id: productId });
        if (product === undefined) throw notFound.product(productId);
        return { productId, quantity, unitPrice: product.price };
      });
      const totalAmount = orderTotal(lines);
      let held: HeldCoupon | null = null;
      if (userCouponId !== null) {
        const row = this.q.heldCoupon.get({ id: userCouponId });
        held = row === undefined ? null : toHeldCoupon(row);
        assertCouponUsable(held, userId, totalAmount, now);
      }
      const amounts = settle(totalAmount, held?.terms ?? null);

      for (const line of lines) {
        if (changesOf(this.q.takeStock.run({ id: line.productId, quantity: line.quantity })) === 0) {
          throw new DomainError(
            "INSUFFICIENT_STOCK",
            `Product ${line.productId} has fewer than ${line.quantity} in stock.`,
          );
        }
      }
      if (userCouponId !== null && changesOf(this.q.useCoupon.run({ id: userCouponId, now })) === 0) {
        throw new DomainError("COUPON_NOT_USABLE", "The coupon has already been used.");
      }
      let balanceAfter: number | null = null;
      if (amounts.paidAmount > 0) {
        const debited = this.q.debitIfCovered.get({ id: userId, amount: amounts.paidAmount });
        if (debited === undefined) {
          throw new DomainError(
            "INSUFFICIENT_POINTS",
            `The order costs ${amounts.paidAmount} points; the balance is lower.`,
          );
        }
        balanceAfter = debited.balance;
      }

      const { id: orderId } = this.q.insertOrder.get({ userId, userCouponId, now, ...amounts }) as { id: number };
      for (const line of lines) this.q.insertOrderItem.run({ orderId, ...line });
      if (balanceAfter !== null) {
        this.q.insertHistory.run({ userId, type: "USE", amount: amounts.paidAmount, balanceAfter, orderId, now });
      }
      const order: Order = {
        id: orderId,
        userId,
        status: "PAID",
        items: lines,
        ...amounts,
        userCouponId,
        createdAt: isoOf(now),
        cancelledAt: null,
      };
      this.remember(userId, idempotency, order, now);
      return { replayed: false, value: order };
    });
  }

  async getOrder(orderId: number): Promise<Order> {
    const row = this.q.orderById.get({ id: orderId });
    if (row === undefined) throw notFound.order(orderId);
    return toOrder(row, this.q.orderLines.all({ orderId }));
  }

  async listUserOrders(userId: number, page: PageRequest): Promise<Page<Order>> {
    this.requireUser(userId);
    const rows = this.q.ordersPage.all({ userId, before: page.after ?? NO_UPPER_BOUND, limit: page.limit + 1 });
    const result = toPage(rows, page.limit, (row) => row.id);
    return {
      items: result.items.map((row) => toOrder(row, this.q.orderLines.all({ orderId: row.id }))),
      nextCursor: result.nextCursor,
    };
  }

  async cancelOrder(command: { orderId: number; now: number }): Promise<Order> {
    const { orderId, now } = command;
    return this.write(() => {
      const row = this.q.orderById.get({ id: orderId });
      if (row === undefined) throw notFound.order(orderId);
      assertCancellable(row.status);
      if (changesOf(this.q.markCancelled.run({ id: orderId, now })) === 0) assertCancellable("CANCELLED");

      const lines = this.q.orderLines.all({ orderId });
      for (const line of lines) this.q.returnStock.run({ id: line.productId, quantity: line.quantity });
      if (row.userCouponId !== null) this.q.releaseCoupon.run({ id: row.userCouponId });
      if (row.paidAmount > 0) {
        const credited = this.q.credit.get({ id: row.userId, amount: row.paidAmount }) as { balance: number };
        this.q.insertHistory.run({
          userId: row.userId,
          type: "REFUND",
          amount: row.paidAmount,
          balanceAfter: credited.balance,
          orderId,
          now,
        });
      }
      return toOrder({ ...row, status: "CANCELLED", cancelledAt: now }, lines);
    });
  }

  async purgeIdempotencyKeys(before: number): Promise<number> {
    return this.write(() => changesOf(this.q.purgeIdempotency.run({ before })));
  }

  /** Ready: the database answers and has every migration this build knows. */
  async ping(): Promise<void> {
    assertMigrated("sqlite", (this.q.latestMigration.get() as { at: unknown } | null)?.at);
  }

  async close(): Promise<void> {
    const client = this.db.$client;
    this.commits.flush();
    try {
      client.run("PRAGMA optimize");
      client.run("PRAGMA wal_checkpoint(TRUNCATE)");
    } finally {
      client.close();
    }
  }
}
