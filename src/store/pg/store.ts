import type { RedisClient } from "bun";
import { and, asc, desc, eq, gt, gte, inArray, lt, sql } from "drizzle-orm";
import { assertCouponUsable, type HeldCoupon } from "../../domain/coupon.ts";
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
import {
  type Claim,
  type Claimed,
  type CouponStrategy,
  claimAtomic,
  claimOptimistic,
  claimPessimistic,
  RedisCouponGate,
  writeReserved,
} from "./coupon-strategies.ts";
import type { PgDb } from "./database.ts";
import { coupons, idempotencyKeys, orderItems, orders, pointHistory, products, userCoupons, users } from "./schema.ts";

type Tx = Parameters<Parameters<PgDb["transaction"]>[0]>[0];

const MAX_ATTEMPTS = 5;

/** Serialization failures and deadlocks are retried; everything else is an answer. */
function retryable(error: unknown): boolean {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    const code = (e as { code?: unknown }).code;
    if (code === "40001" || code === "40P01") return true;
  }
  return false;
}

const userColumns = { id: users.id, name: users.name, balance: users.balance };
const productColumns = { id: products.id, name: products.name, price: products.price, stock: products.stock };
const lineColumns = { productId: orderItems.productId, quantity: orderItems.quantity, unitPrice: orderItems.unitPrice };

/**
 * The PostgreSQL adapter: the same guarded writes and the same domain rules as the SQLite adapter,
 * in async READ COMMITTED transactions. Every query inside a transaction is built from `tx` (a
 * statement prepared on the pool would run outside it). Product rows are updated in ascending id
 * order so two orders never deadlock; serialization failures and deadlocks are retried, bounded.
 */
export class PgStore implements Store {
  private readonly gate: RedisCouponGate | null;

  constructor(
    private readonly db: PgDb,
    private readonly options: { couponStrategy: CouponStrategy; redis?: RedisClient; redisPrefix?: string } = {
      couponStrategy: "atomic",
    },
  ) {
    if (options.couponStrategy === "redis") {
      if (options.redis === undefined) throw new Error("the redis coupon strategy needs a Redis client");
      this.gate = new RedisCouponGate(options.redis, options.redisPrefix ?? "flashcart:");
    } else {
      this.gate = null;
    }
  }

  /** For the redis strategy: copies every drop's state from PostgreSQL into Redis (at start-up). */
  async rebuildRedis(): Promise<number> {
    return this.gate === null ? 0 : this.gate.rebuild(this.db);
  }

  private async write<T>(work: (tx: Tx) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.db.transaction(work);
      } catch (error) {
        if (attempt >= MAX_ATTEMPTS || !retryable(error)) throw error;
        await Bun.sleep(Math.random() * 5 * attempt);
      }
    }
  }

  private async priorResponse(
    tx: Tx,
    userId: number,
    claim: IdempotentRequest | null,
  ): Promise<{ statusCode: number; body: string } | null> {
    if (claim === null) return null;
    // Two requests with one new key race here: the second waits on the first one's row lock.
    const inserted = await tx
      .insert(idempotencyKeys)
      .values({
        userId,
        key: claim.key,
        fingerprint: claim.fingerprint,
        statusCode: claim.statusCode,
        responseBody: "",
        createdAt: 0,
      })
      .onConflictDoNothing()
      .returning({ key: idempotencyKeys.key });
    if (inserted.length > 0) return null;
    const [prior] = await tx
      .select()
      .from(idempotencyKeys)
      .where(and(eq(idempotencyKeys.userId, userId), eq(idempotencyKeys.key, claim.key)));
    if (prior === undefined) return null;
    if (prior.fingerprint !== claim.fingerprint) {
      throw new DomainError(
        "IDEMPOTENCY_KEY_REUSED",
        "This Idempotency-Key was already used for a different request; use a new key for a new request.",
      );
    }
    return { statusCode: prior.statusCode, body: prior.responseBody };
  }

  private async remember(tx: Tx, userId: number, claim: IdempotentRequest | null, value: unknown, now: number) {
    if (claim === null) return;
    await tx
      .update(idempotencyKeys)
      .set({ responseBody: JSON.stringify(value), createdAt: now })
      .where(and(eq(idempotencyKeys.userId, userId), eq(idempotencyKeys.key, claim.key)));
  }

  private async requireUser(q: Tx | PgDb, userId: number): Promise<User> {
    const [user] = await q.select(userColumns).from(users).where(eq(users.id, userId));
    if (user === undefined) throw notFound.user(userId);
    return user;
  }

  async createUser(name: string, now: number): Promise<User> {
    const [user] = await this.db.insert(users).values({ name, balance: 0, createdAt: now }).returning(userColumns);
    return user as User;
  }

  getUser(userId: number): Promise<User> {
    return this.requireUser(this.db, userId);
  }

  chargePoints(command: ChargePoints): Promise<Idempotent<PointBalance>> {
    const { userId, amount, now, idempotency } = command;
    return this.write(async (tx): Promise<Idempotent<PointBalance>> => {
      await this.requireUser(tx, userId);
      const prior = await this.priorResponse(tx, userId, idempotency);
      if (prior !== null) return { replayed: true, ...prior };
      const [credited] = await tx
        .update(users)
        .set({ balance: sql`${users.balance} + ${amount}` })
        .where(and(eq(users.id, userId), sql`${users.balance} + ${amount} <= ${limits.maxBalance}`))
        .returning({ balance: users.balance });
      if (credited === undefined) {
        throw new DomainError(
          "BALANCE_LIMIT_EXCEEDED",
          `A balance may not exceed ${limits.maxBalance} points; this charge would pass it.`,
        );
      }
      await tx
        .insert(pointHistory)
        .values({ userId, type: "CHARGE", amount, balanceAfter: credited.balance, orderId: null, createdAt: now });
      const value: PointBalance = { userId, balance: credited.balance };
      await this.remember(tx, userId, idempotency, value, now);
      return { replayed: false, value };
    });
  }

  async listPointHistory(userId: number, page: PageRequest): Promise<Page<PointHistoryEntry>> {
    await this.requireUser(this.db, userId);
    const rows = await this.db
      .select()
      .from(pointHistory)
      .where(and(eq(pointHistory.userId, userId), page.after === null ? undefined : lt(pointHistory.id, page.after)))
      .orderBy(desc(pointHistory.id))
      .limit(page.limit + 1);
    return toPage(
      rows.map((row) => ({
        id: row.id,
        type: row.type,
        amount: row.amount,
        balanceAfter: row.balanceAfter,
        orderId: row.orderId,
        createdAt: isoOf(row.createdAt),
      })),
      page.limit,
      (entry) => entry.id,
    );
  }

  async createProduct(input: { name: string; price: number; stock: number }, now: number): Promise<Product> {
    const [product] = await this.db
      .insert(products)
      .values({ ...input, createdAt: now })
      .returning(productColumns);
    return product as Product;
  }

  async getProduct(productId: number): Promise<Product> {
    const [product] = await this.db.select(productColumns).from(products).where(eq(products.id, productId));
    if (product === undefined) throw notFound.product(productId);
    return product;
  }

  async listProducts(page: PageRequest): Promise<Page<Product>> {
    const rows = await this.db
      .select(productColumns)
      .from(products)
      .where(gt(products.id, page.after ?? 0))
      .orderBy(asc(products.id))
      .limit(page.limit + 1);
    return toPage(rows, page.limit, (product) => product.id);
  }

  popularProducts(query: { since: number; limit: number }): Promise<PopularProduct[]> {
    const sold = sql<number>`sum(${orderItems.quantity})`.mapWith(Number);
    return this.db
      .select({ productId: products.id, name: products.name, price: products.price, soldQuantity: sold })
      .from(orders)
      .innerJoin(orderItems, eq(orderItems.orderId, orders.id))
      .innerJoin(products, eq(products.id, orderItems.productId))
      .where(and(eq(orders.status, "PAID"), gte(orders.createdAt, query.since)))
      .groupBy(products.id)
      .orderBy(desc(sql`sum(${orderItems.quantity})`), asc(products.id))
      .limit(query.limit);
  }

  async createCoupon(input: NewCoupon, now: number): Promise<Coupon> {
    const [row] = await this.db
      .insert(coupons)
      .values({ ...input, issuedQuantity: 0, createdAt: now })
      .returning();
    const coupon = row as CouponRow;
    await this.gate?.created(coupon.id, coupon.totalQuantity);
    return toCoupon(coupon);
  }

  async getCoupon(couponId: number): Promise<Coupon> {
    const [row] = await this.db.select().from(coupons).where(eq(coupons.id, couponId));
    if (row === undefined) throw notFound.coupon(couponId);
    return toCoupon(row);
  }

  /** First come, first served, by the configured strategy (see coupon-strategies.ts). */
  async claimCoupon(command: { userId: number; couponId: number; now: number }): Promise<ClaimedCoupon> {
    const claimed = await this.claim(command);
    return {
      id: claimed.id,
      userId: command.userId,
      couponId: command.couponId,
      status: "AVAILABLE",
      issuedAt: isoOf(command.now),
      expiresAt: isoOf(claimed.expiresAt),
      usedAt: null,
    };
  }

  private async claim(claim: Claim): Promise<Claimed> {
    switch (this.options.couponStrategy) {
      case "atomic":
        return this.write((tx) => claimAtomic(tx, claim));
      case "pessimistic":
        return this.write((tx) => claimPessimistic(tx, claim));
      case "optimistic":
        return this.write((tx) => claimOptimistic(tx, claim));
      case "redis": {
        const gate = this.gate as RedisCouponGate;
        const { validDays } = await gate.check(this.db, claim);
        await gate.reserve(this.db, claim);
        try {
          return await this.write((tx) => writeReserved(tx, claim, validDays));
        } catch (error) {
          // Redis was ahead of PostgreSQL: give the slot back (and the user too, unless they do hold it).
          const holds = error instanceof DomainError && error.code === "COUPON_ALREADY_ISSUED";
          await gate.release(claim, !holds);
          throw error;
        }
      }
    }
  }

  async listUserCoupons(query: {
    userId: number;
    status: UserCouponStatus | null;
    now: number;
  }): Promise<UserCouponWithCoupon[]> {
    await this.requireUser(this.db, query.userId);
    const rows = await this.db
      .select({ held: userCoupons, coupon: coupons })
      .from(userCoupons)
      .innerJoin(coupons, eq(coupons.id, userCoupons.couponId))
      .where(eq(userCoupons.userId, query.userId))
      .orderBy(asc(userCoupons.id));
    const items: UserCouponWithCoupon[] = [];
    for (const row of rows) {
      const issued = toClaimedCoupon(row.held, query.now);
      if (query.status === null || issued.status === query.status)
        items.push({ ...issued, coupon: toCoupon(row.coupon) });
    }
    return items;
  }

  placeOrder(command: PlaceOrder): Promise<Idempotent<Order>> {
    const { userId, userCouponId, now, idempotency } = command;
    return this.write(async (tx): Promise<Idempotent<Order>> => {
      await this.requireUser(tx, userId);
      const prior = await this.priorResponse(tx, userId, idempotency);
      if (prior !== null) return { replayed: true, ...prior };

      const requested = linesInLockOrder(command.items);
      const priced = await tx
        .select({ id: products.id, price: products.price })
        .from(products)
        .where(
          inArray(
            products.id,
            requested.map((line) => line.productId),
          ),
        );
      const priceOf = new Map(priced.map((p) => [p.id, p.price]));
      const lines: OrderLine[] = requested.map(({ productId, quantity }) => {
        const unitPrice = priceOf.get(productId);
        if (unitPrice === undefined) throw notFound.product(productId);
        return { productId, quantity, unitPrice };
      });
      const totalAmount = orderTotal(lines);
      let held: HeldCoupon | null = null;
      if (userCouponId !== null) {
        const [row] = await tx
          .select({ held: userCoupons, coupon: coupons })
          .from(userCoupons)
          .innerJoin(coupons, eq(coupons.id, userCoupons.couponId))
          .where(eq(userCoupons.id, userCouponId));
        held = row === undefined ? null : toHeldCoupon(row);
        assertCouponUsable(held, userId, totalAmount, now);
      }
      const amounts = settle(totalAmount, held?.terms ?? null);

      for (const line of lines) {
        const taken = await tx
          .update(products)
          .set({ stock: sql`${products.stock} - ${line.quantity}` })
          .where(and(eq(products.id, line.productId), gte(products.stock, line.quantity)))
          .returning({ id: products.id });
        if (taken.length === 0) {
          throw new DomainError(
            "INSUFFICIENT_STOCK",
            `Product ${line.productId} has fewer than ${line.quantity} in stock.`,
          );
        }
      }
      if (userCouponId !== null) {
        const used = await tx
          .update(userCoupons)
          .set({ status: "USED", usedAt: now })
          .where(and(eq(userCoupons.id, userCouponId), eq(userCoupons.status, "AVAILABLE")))
          .returning({ id: userCoupons.id });
        if (used.length === 0) throw new DomainError("COUPON_NOT_USABLE", "The coupon has already been used.");
      }
      let balanceAfter: number | null = null;
      if (amounts.paidAmount > 0) {
        const [debited] = await tx
          .update(users)
          .set({ balance: sql`${users.balance} - ${amounts.paidAmount}` })
          .where(and(eq(users.id, userId), gte(users.balance, amounts.paidAmount)))
          .returning({ balance: users.balance });
        if (debited === undefined) {
          throw new DomainError(
            "INSUFFICIENT_POINTS",
            `The order costs ${amounts.paidAmount} points; the balance is lower.`,
          );
        }
        balanceAfter = debited.balance;
      }

      const [inserted] = await tx
        .insert(orders)
        .values({ userId, status: "PAID", userCouponId, createdAt: now, ...amounts })
        .returning({ id: orders.id });
      const orderId = (inserted as { id: number }).id;
      await tx.insert(orderItems).values(lines.map((line) => ({ orderId, ...line })));
      if (balanceAfter !== null) {
        await tx
          .insert(pointHistory)
          .values({ userId, type: "USE", amount: amounts.paidAmount, balanceAfter, orderId, createdAt: now });
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
      await this.remember(tx, userId, idempotency, order, now);
      return { replayed: false, value: order };
    });
  }

  private linesOf(q: Tx | PgDb, orderId: number): Promise<OrderLine[]> {
    return q
      .select(lineColumns)
      .from(orderItems)
      .where(eq(orderItems.orderId, orderId))
      .orderBy(asc(orderItems.productId));
  }

  async getOrder(orderId: number): Promise<Order> {
    const [row] = await this.db.select().from(orders).where(eq(orders.id, orderId));
    if (row === undefined) throw notFound.order(orderId);
    return toOrder(row, await this.linesOf(this.db, orderId));
  }

  async listUserOrders(userId: number, page: PageRequest): Promise<Page<Order>> {
    await this.requireUser(this.db, userId);
    const rows = await this.db
      .select()
      .from(orders)
      .where(and(eq(orders.userId, userId), page.after === null ? undefined : lt(orders.id, page.after)))
      .orderBy(desc(orders.id))
      .limit(page.limit + 1);
    const result = toPage(rows, page.limit, (row) => row.id);
    return {
      items: await Promise.all(result.items.map(async (row) => toOrder(row, await this.linesOf(this.db, row.id)))),
      nextCursor: result.nextCursor,
    };
  }

  cancelOrder(command: { orderId: number; now: number }): Promise<Order> {
    const { orderId, now } = command;
    return this.write(async (tx) => {
      const [row] = await tx.select().from(orders).where(eq(orders.id, orderId));
      if (row === undefined) throw notFound.order(orderId);
      assertCancellable(row.status);
      const marked = await tx
        .update(orders)
        .set({ status: "CANCELLED", cancelledAt: now })
        .where(and(eq(orders.id, orderId), eq(orders.status, "PAID")))
        .returning({ id: orders.id });
      if (marked.length === 0) assertCancellable("CANCELLED");

      const lines = await this.linesOf(tx, orderId);
      for (const line of lines) {
        await tx
          .update(products)
          .set({ stock: sql`${products.stock} + ${line.quantity}` })
          .where(eq(products.id, line.productId));
      }
      if (row.userCouponId !== null) {
        await tx
          .update(userCoupons)
          .set({ status: "AVAILABLE", usedAt: null })
          .where(and(eq(userCoupons.id, row.userCouponId), eq(userCoupons.status, "USED")));
      }
      if (row.paidAmount > 0) {
        const [credited] = await tx
          .update(users)
          .set({ balance: sql`${users.balance} + ${row.paidAmount}` })
          .where(eq(users.id, row.userId))
          .returning({ balance: users.balance });
        await tx.insert(pointHistory).values({
          userId: row.userId,
          type: "REFUND",
          amount: row.paidAmount,
          balanceAfter: (credited as { balance: number }).balance,
          orderId,
          createdAt: now,
        });
      }
      return toOrder({ ...row, status: "CANCELLED", cancelledAt: now }, lines);
    });
  }

  async purgeIdempotencyKeys(before: number): Promise<number> {
    const removed = await this.db
      .delete(idempotencyKeys)
      .where(lt(idempotencyKeys.createdAt, before))
      .returning({ key: idempotencyKeys.key });
    return removed.length;
  }

  /** Ready: the database answers and has every migration this build knows. */
  async ping(): Promise<void> {
    const [row] = await this.db.execute<{ at: unknown }>(sql`SELECT max(created_at) AS at FROM "__drizzle_migrations"`);
    assertMigrated("pg", row?.at);
  }

  async close(): Promise<void> {
    await this.db.$client.end({ timeout: 5 });
    this.options.redis?.close();
  }
}
