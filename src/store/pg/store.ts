import type { RedisClient } from "bun";
import { and, asc, desc, eq, gt, gte, lt, sql } from "drizzle-orm";
import { notFound } from "../../domain/errors.ts";
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
import { orderOf } from "../../domain/order.ts";
import { toPage } from "../../domain/pagination.ts";
import { type AsyncStorage, advance, runAsync, type Script } from "../../domain/script.ts";
import { isoOf } from "../../domain/time.ts";
import {
  type CancelOrder,
  type ChargePoints,
  type ClaimCoupon,
  cancelOrder,
  chargePoints,
  claimCoupon,
  type Idempotent,
  type PlaceOrder,
  placeOrder,
  type WriteStorage,
} from "../../domain/writes.ts";
import { assertMigrated } from "../migrations.ts";
import type { Store } from "../port.ts";
import { must, toClaimedCoupon, toCoupon } from "../rows.ts";
import { type CouponStrategy, RedisCouponGate, writesOf } from "./coupon-strategies.ts";
import type { PgDb } from "./database.ts";
import { coupons, idempotencyKeys, orderItems, orders, pointHistory, products, userCoupons, users } from "./schema.ts";
import { lineColumns, type PgWrites, type Tx } from "./writes.ts";

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

/**
 * The PostgreSQL adapter: the same write scripts as the SQLite adapter (domain/writes.ts), run in
 * async READ COMMITTED transactions whose moves are answered by PgWrites (or a coupon strategy's
 * variant of it). Product rows are updated in ascending id order so two orders never deadlock;
 * serialization failures and deadlocks are retried, bounded.
 */
export class PgStore implements Store {
  private readonly gate: RedisCouponGate | null;
  private readonly Writes: new (
    tx: Tx,
  ) => PgWrites;

  constructor(
    private readonly db: PgDb,
    private readonly options: { couponStrategy: CouponStrategy; redis?: RedisClient; redisPrefix?: string } = {
      couponStrategy: "atomic",
    },
  ) {
    this.Writes = writesOf[options.couponStrategy];
    if (options.couponStrategy === "redis") {
      if (options.redis === undefined) throw new Error("the redis coupon strategy needs a Redis client");
      this.gate = new RedisCouponGate(db, options.redis, options.redisPrefix ?? "flashcart:");
    } else {
      this.gate = null;
    }
  }

  /** For the redis strategy: copies every drop's state from PostgreSQL into Redis (at start-up). */
  async rebuildRedis(): Promise<number> {
    return this.gate === null ? 0 : this.gate.rebuild();
  }

  /**
   * Runs a domain write script in one transaction; a serialization failure or deadlock reruns it
   * from the start, bounded. `early` answers the first moves it can before the transaction opens
   * (the redis strategy's reservation), so a refused claim never reaches PostgreSQL.
   */
  private async write<R>(
    script: () => Script<WriteStorage, R>,
    early: Partial<AsyncStorage<WriteStorage>> = {},
  ): Promise<R> {
    for (let attempt = 1; ; attempt++) {
      try {
        const running = script();
        const next = await advance(running, running.next(), early);
        if (next.done) return next.value;
        return await this.db.transaction((tx) => runAsync(running, new this.Writes(tx), next));
      } catch (error) {
        if (attempt >= MAX_ATTEMPTS || !retryable(error)) throw error;
        await Bun.sleep(Math.random() * 5 * attempt);
      }
    }
  }

  private async requireUser(q: PgDb, userId: number): Promise<User> {
    const [user] = await q.select(userColumns).from(users).where(eq(users.id, userId));
    if (user === undefined) throw notFound.user(userId);
    return user;
  }

  async createUser(name: string, now: number): Promise<User> {
    const [user] = await this.db.insert(users).values({ name, balance: 0, createdAt: now }).returning(userColumns);
    return must(user, "the new user");
  }

  getUser(userId: number): Promise<User> {
    return this.requireUser(this.db, userId);
  }

  chargePoints(command: ChargePoints): Promise<Idempotent<PointBalance>> {
    return this.write(() => chargePoints(command));
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
    return must(product, "the new product");
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
    const coupon = must(row, "the new coupon");
    await this.gate?.created(coupon.id, coupon.totalQuantity);
    return toCoupon(coupon);
  }

  async getCoupon(couponId: number): Promise<Coupon> {
    const [row] = await this.db.select().from(coupons).where(eq(coupons.id, couponId));
    if (row === undefined) throw notFound.coupon(couponId);
    return toCoupon(row);
  }

  /** First come, first served, by the configured strategy (see coupon-strategies.ts). */
  async claimCoupon(command: ClaimCoupon): Promise<ClaimedCoupon> {
    if (this.gate === null) return this.write(() => claimCoupon(command));
    const claim = this.gate.claim(command);
    try {
      return await this.write(() => claimCoupon(command), claim.moves);
    } catch (error) {
      await claim.undo(error);
      throw error;
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
    return this.write(() => placeOrder(command));
  }

  private linesOf(q: PgDb, orderId: number): Promise<OrderLine[]> {
    return q
      .select(lineColumns)
      .from(orderItems)
      .where(eq(orderItems.orderId, orderId))
      .orderBy(asc(orderItems.productId));
  }

  async getOrder(orderId: number): Promise<Order> {
    const [row] = await this.db.select().from(orders).where(eq(orders.id, orderId));
    if (row === undefined) throw notFound.order(orderId);
    return orderOf(row, await this.linesOf(this.db, orderId));
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
      items: await Promise.all(result.items.map(async (row) => orderOf(row, await this.linesOf(this.db, row.id)))),
      nextCursor: result.nextCursor,
    };
  }

  cancelOrder(command: CancelOrder): Promise<Order> {
    return this.write(() => cancelOrder(command));
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
