import { and, asc, desc, eq, getTableColumns, gt, gte, lt, sql } from "drizzle-orm";
import { notFound } from "../../domain/errors.ts";
import type { StoredEvent } from "../../domain/events.ts";
import type * as model from "../../domain/model.ts";
import { orderOf } from "../../domain/order.ts";
import { toPage } from "../../domain/pagination.ts";
import { type AsyncStorage, advance, runAsync, type Script } from "../../domain/script.ts";
import { type ClaimCoupon, claimCoupon, type Idempotent, type PlaceOrder, placeOrder } from "../../domain/writes.ts";
import type { RedisLink } from "../../redis-link.ts";
import { assertMigrated } from "../migrations.ts";
import type { NewProduct, PopularQuery, Store, UserCouponsQuery } from "../port.ts";
import { must, toCoupon, toHistoryEntry, toUserCoupons } from "../rows.ts";
import { ScriptedWrites } from "../scripted-writes.ts";
import { type CouponStrategy, type Strategy, strategyOf } from "./coupon-strategies.ts";
import type { PgDb } from "./database.ts";
import { answeringPgFaults } from "./faults.ts";
import { orderMoves } from "./orders.ts";
import { PgOutbox } from "./outbox.ts";
import { coupons, idempotencyKeys, orderItems, orders, pointHistory, products, userCoupons, users } from "./schema.ts";
import { lineColumns, type PgWrites, type TxStorage } from "./writes.ts";

const MAX_ATTEMPTS = 5;

/** Serialization failures and deadlocks are retried; everything else is an answer. */
function retryable(error: unknown): boolean {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    const code = (e as { code?: unknown }).code;
    if (code === "40001" || code === "40P01") return true;
  }
  return false;
}

/** Runs a write again from the start after a serialization failure or deadlock, bounded. */
async function retrying<R>(write: () => Promise<R>): Promise<R> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await write();
    } catch (error) {
      if (attempt >= MAX_ATTEMPTS || !retryable(error)) throw error;
      await Bun.sleep(Math.random() * 5 * attempt);
    }
  }
}

/**
 * A drop's columns as the API shows them: a sharded drop (COUPON_STRATEGY=sharded) keeps its remaining
 * supply in coupon_shards and shows its own row as all handed out, so what is claimed is the row's
 * count less what the shards still hold.
 */
const couponColumns = {
  ...getTableColumns(coupons),
  issuedQuantity: sql<number>`(${coupons.issuedQuantity} - coalesce((SELECT sum(s.total - s.issued) FROM coupon_shards s WHERE s.coupon_id = ${coupons.id}), 0))::int`,
};

const userColumns = { id: users.id, name: users.name, balance: users.balance };
const productColumns = { id: products.id, name: products.name, price: products.price, stock: products.stock };

/**
 * The PostgreSQL adapter: the same write scripts as the SQLite adapter (domain/writes.ts), run in
 * async READ COMMITTED transactions whose moves are answered by PgWrites (or a coupon strategy's
 * variant of it). model.Product rows are updated in ascending id order so two orders never deadlock;
 * serialization failures and deadlocks are retried, bounded.
 */
export interface PgStoreOptions {
  couponStrategy: CouponStrategy;
  /** Whether writes record their events in the outbox (EVENTS=on). */
  events: boolean;
  redis?: RedisLink;
  redisPrefix?: string;
}

export class PgStore extends ScriptedWrites implements Store {
  private readonly strategy: Strategy;
  readonly outbox: PgOutbox;
  /** The reads by key, built once: a query built per request costs more than running it. */
  private readonly byKey;

  constructor(
    private readonly db: PgDb,
    private readonly options: PgStoreOptions,
  ) {
    super();
    this.outbox = new PgOutbox(db, options.events);
    const id = sql.placeholder("id");
    this.byKey = {
      user: db.select(userColumns).from(users).where(eq(users.id, id)).prepare("user_by_id"),
      product: db.select(productColumns).from(products).where(eq(products.id, id)).prepare("product_by_id"),
      coupon: db.select(couponColumns).from(coupons).where(eq(coupons.id, id)).prepare("coupon_by_id"),
      order: db.select().from(orders).where(eq(orders.id, id)).prepare("order_by_id"),
      lines: db
        .select(lineColumns)
        .from(orderItems)
        .where(eq(orderItems.orderId, id))
        .orderBy(asc(orderItems.productId))
        .prepare("lines_by_order"),
    };
    const { couponStrategy, redis, redisPrefix } = options;
    this.strategy = strategyOf(
      couponStrategy,
      db,
      this.outbox.tally,
      redis === undefined ? undefined : { client: redis, prefix: redisPrefix ?? "flashcart:" },
    );
    // A fault of PostgreSQL (down, starting, out of connections) is answered 503, for every operation.
    answeringPgFaults(this);
  }

  /** For the redis strategy: copies every drop's state from PostgreSQL into Redis (at start-up). */
  async rebuildRedis(): Promise<number> {
    return (await this.strategy.rebuild?.()) ?? 0;
  }

  /**
   * Runs a domain write script in one transaction; a serialization failure or deadlock reruns it
   * from the start, bounded. `early` answers the first moves it can before the transaction opens
   * (the redis strategy's reservation), so a refused claim never reaches PostgreSQL.
   */
  protected run<R>(
    script: (recordEvents: boolean) => Script<TxStorage, R>,
    early: Partial<AsyncStorage<TxStorage>> = {},
  ): Promise<R> {
    return retrying(async () => {
      const running = script(this.outbox.recording);
      const next = await advance(running, running.next(), early);
      if (next.done) return next.value;
      let writes: PgWrites | null = null;
      // postgres.js's own transaction, so that every move is a prepared tagged template (writes.ts).
      const value = (await this.db.$client.begin((tx) => {
        writes = new this.strategy.Writes(tx);
        return runAsync(running, writes, next);
      })) as R;
      // Committed: its events count (an attempt rolled back for a retry wrote none).
      if (writes !== null) this.outbox.tally.add((writes as PgWrites).written);
      return value;
    });
  }

  /** Two round trips, no transaction: the order's facts, then place_order (see orders.ts). */
  placeOrder(command: PlaceOrder): Promise<Idempotent<model.Order>> {
    return retrying(async () =>
      runAsync(
        placeOrder(command, this.outbox.recording),
        await orderMoves(this.db.$client, command, this.outbox.tally),
      ),
    );
  }

  private async requireUser(userId: number): Promise<model.User> {
    const [user] = await this.byKey.user.execute({ id: userId });
    if (user === undefined) throw notFound.user(userId);
    return user;
  }

  async createUser(name: string, now: number): Promise<model.User> {
    const [user] = await this.db.insert(users).values({ name, balance: 0, createdAt: now }).returning(userColumns);
    return must(user, "the new user");
  }

  getUser(userId: number): Promise<model.User> {
    return this.requireUser(userId);
  }

  async listPointHistory(userId: number, page: model.PageRequest): Promise<model.Page<model.PointHistoryEntry>> {
    await this.requireUser(userId);
    const rows = await this.db
      .select()
      .from(pointHistory)
      .where(and(eq(pointHistory.userId, userId), page.after === null ? undefined : lt(pointHistory.id, page.after)))
      .orderBy(desc(pointHistory.id))
      .limit(page.limit + 1);
    return toPage(rows.map(toHistoryEntry), page.limit, (entry) => entry.id);
  }

  async createProduct(input: NewProduct, now: number): Promise<model.Product> {
    const [product] = await this.db
      .insert(products)
      .values({ ...input, createdAt: now })
      .returning(productColumns);
    return must(product, "the new product");
  }

  async getProduct(productId: number): Promise<model.Product> {
    const [product] = await this.byKey.product.execute({ id: productId });
    if (product === undefined) throw notFound.product(productId);
    return product;
  }

  async listProducts(page: model.PageRequest): Promise<model.Page<model.Product>> {
    const rows = await this.db
      .select(productColumns)
      .from(products)
      .where(gt(products.id, page.after ?? 0))
      .orderBy(asc(products.id))
      .limit(page.limit + 1);
    return toPage(rows, page.limit, (product) => product.id);
  }

  popularProducts(query: PopularQuery): Promise<model.PopularProduct[]> {
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

  async createCoupon(input: model.NewCoupon, now: number): Promise<model.Coupon> {
    const [row] = await this.db
      .insert(coupons)
      .values({ ...input, issuedQuantity: 0, createdAt: now })
      .returning();
    const coupon = must(row, "the new coupon");
    await this.strategy.created?.(coupon.id, coupon.totalQuantity);
    return toCoupon(coupon);
  }

  async getCoupon(couponId: number): Promise<model.Coupon> {
    const [row] = await this.byKey.coupon.execute({ id: couponId });
    if (row === undefined) throw notFound.coupon(couponId);
    return toCoupon(row);
  }

  /** First come, first served, by the configured strategy (see coupon-strategies.ts). */
  async claimCoupon(command: ClaimCoupon): Promise<model.ClaimedCoupon> {
    const plan = this.strategy.plan(command);
    try {
      return await this.run((recordEvents) => claimCoupon(command, recordEvents), plan.before);
    } catch (error) {
      await plan.undo?.(error);
      throw error;
    }
  }

  async listUserCoupons(query: UserCouponsQuery): Promise<model.UserCouponWithCoupon[]> {
    await this.requireUser(query.userId);
    const rows = await this.db
      .select({ held: userCoupons, coupon: couponColumns })
      .from(userCoupons)
      .innerJoin(coupons, eq(coupons.id, userCoupons.couponId))
      .where(eq(userCoupons.userId, query.userId))
      .orderBy(asc(userCoupons.id));
    return toUserCoupons(rows, query.status, query.now);
  }

  private linesOf(orderId: number): Promise<model.OrderLine[]> {
    return this.byKey.lines.execute({ id: orderId });
  }

  async getOrder(orderId: number): Promise<model.Order> {
    const [row] = await this.byKey.order.execute({ id: orderId });
    if (row === undefined) throw notFound.order(orderId);
    return orderOf(row, await this.linesOf(orderId));
  }

  async listUserOrders(userId: number, page: model.PageRequest): Promise<model.Page<model.Order>> {
    await this.requireUser(userId);
    const rows = await this.db
      .select()
      .from(orders)
      .where(and(eq(orders.userId, userId), page.after === null ? undefined : lt(orders.id, page.after)))
      .orderBy(desc(orders.id))
      .limit(page.limit + 1);
    const result = toPage(rows, page.limit, (row) => row.id);
    return {
      items: await Promise.all(result.items.map(async (row) => orderOf(row, await this.linesOf(row.id)))),
      nextCursor: result.nextCursor,
    };
  }

  listEvents(after: number, limit: number): Promise<StoredEvent[]> {
    return this.outbox.eventsAfter(after, limit);
  }

  async purgeIdempotencyKeys(before: number): Promise<number> {
    const removed = await this.db
      .delete(idempotencyKeys)
      .where(lt(idempotencyKeys.createdAt, before))
      .returning({ key: idempotencyKeys.key });
    return removed.length;
  }

  /** Ready: the database answers and has every migration this build knows; Redis answers, if the strategy uses it. */
  async ping(): Promise<void> {
    const [row] = await this.db.execute<{ at: unknown }>(sql`SELECT max(created_at) AS at FROM "__drizzle_migrations"`);
    assertMigrated("pg", row?.at);
    await this.options.redis?.send("PING", []);
  }

  async close(): Promise<void> {
    await this.outbox.relayLock.release();
    await this.db.$client.end({ timeout: 5 });
    this.options.redis?.close();
  }
}
