import { notFound } from "../../domain/errors.ts";
import type {
  ClaimedCoupon,
  Coupon,
  NewCoupon,
  Order,
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
import { runSync, type Script } from "../../domain/script.ts";
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
import type { SqliteDb } from "./database.ts";
import { GroupCommit } from "./group-commit.ts";
import { prepareStatements, type Statements } from "./statements.ts";
import { changesOf, sqliteWrites } from "./writes.ts";

/** Keyset cursors: "before the largest id" and "after id 0" let one prepared statement serve the first page too. */
const NO_UPPER_BOUND = Number.MAX_SAFE_INTEGER;

/**
 * The SQLite adapter. Reads run the prepared statements directly (WAL readers never wait for the
 * writer). Writes run a domain script (domain/writes.ts) as one synchronous unit of work handed to
 * GroupCommit, which runs it inside a `BEGIN IMMEDIATE` transaction: no `await` inside, and the write
 * lock is taken up front so writers in other processes queue on busy_timeout instead of failing with
 * SQLITE_BUSY.
 */
export class SqliteStore implements Store {
  private readonly q: Statements;
  private readonly writes: WriteStorage;
  private readonly commits: GroupCommit;

  constructor(private readonly db: SqliteDb) {
    this.q = prepareStatements(db);
    this.writes = sqliteWrites(this.q);
    this.commits = new GroupCommit(db.$client);
  }

  /**
   * One synchronous unit of write work, committed with the others of this event-loop turn in a single
   * `BEGIN IMMEDIATE` transaction (see GroupCommit). A throw rolls back this unit's effects only.
   */
  private write<T>(work: () => T): Promise<T> {
    return this.commits.run(work);
  }

  /** A domain write script, run to its end inside one unit of the group commit. */
  private run<R>(script: () => Script<WriteStorage, R>): Promise<R> {
    return this.commits.run(() => runSync(script(), this.writes));
  }

  private requireUser(userId: number): User {
    const user = this.q.userById.get({ id: userId });
    if (user === undefined) throw notFound.user(userId);
    return user;
  }

  async createUser(name: string, now: number): Promise<User> {
    return this.write(() => must(this.q.insertUser.get({ name, now }), "the new user"));
  }

  async getUser(userId: number): Promise<User> {
    return this.requireUser(userId);
  }

  chargePoints(command: ChargePoints): Promise<Idempotent<PointBalance>> {
    return this.run(() => chargePoints(command));
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
    return this.write(() => must(this.q.insertProduct.get({ ...input, now }), "the new product"));
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
    return this.write(() => toCoupon(must(this.q.insertCoupon.get({ ...input, now }), "the new coupon")));
  }

  async getCoupon(couponId: number): Promise<Coupon> {
    const row = this.q.couponById.get({ id: couponId });
    if (row === undefined) throw notFound.coupon(couponId);
    return toCoupon(row);
  }

  claimCoupon(command: ClaimCoupon): Promise<ClaimedCoupon> {
    return this.run(() => claimCoupon(command));
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

  placeOrder(command: PlaceOrder): Promise<Idempotent<Order>> {
    return this.run(() => placeOrder(command));
  }

  async getOrder(orderId: number): Promise<Order> {
    const row = this.q.orderById.get({ id: orderId });
    if (row === undefined) throw notFound.order(orderId);
    return orderOf(row, this.q.orderLines.all({ orderId }));
  }

  async listUserOrders(userId: number, page: PageRequest): Promise<Page<Order>> {
    this.requireUser(userId);
    const rows = this.q.ordersPage.all({ userId, before: page.after ?? NO_UPPER_BOUND, limit: page.limit + 1 });
    const result = toPage(rows, page.limit, (row) => row.id);
    return {
      items: result.items.map((row) => orderOf(row, this.q.orderLines.all({ orderId: row.id }))),
      nextCursor: result.nextCursor,
    };
  }

  cancelOrder(command: CancelOrder): Promise<Order> {
    return this.run(() => cancelOrder(command));
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
