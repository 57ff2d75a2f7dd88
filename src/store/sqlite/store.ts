import { notFound } from "../../domain/errors.ts";
import type { EventType, StoredEvent } from "../../domain/events.ts";
import type * as model from "../../domain/model.ts";
import { orderOf } from "../../domain/order.ts";
import { toPage } from "../../domain/pagination.ts";
import { advanceSync, type KnownAnswers, runSync, type Script, UNKNOWN } from "../../domain/script.ts";
import {
  type ClaimCoupon,
  type ClaimStorage,
  claimCoupon,
  type Idempotent,
  type PlaceOrder,
  placeOrder,
  type WriteStorage,
} from "../../domain/writes.ts";
import { ClaimMemory } from "../claim-memory.ts";
import { assertMigrated } from "../migrations.ts";
import type { NewProduct, PopularQuery, Store, UserCouponsQuery } from "../port.ts";
import { must, toCoupon, toHistoryEntry, toUserCoupons } from "../rows.ts";
import { ScriptedWrites } from "../scripted-writes.ts";
import type { SqliteDb } from "./database.ts";
import { freeBytes, STORAGE_HEADROOM_BYTES } from "./faults.ts";
import { GroupCommit } from "./group-commit.ts";
import { SqliteOutbox } from "./outbox.ts";
import { prepareStatements, type Statements } from "./statements.ts";
import { WalKeeper } from "./wal.ts";
import { changesOf, sqliteWrites } from "./writes.ts";

/** Keyset cursors: "before the largest id" and "after id 0" let one prepared statement serve the first page too. */
const NO_UPPER_BOUND = Number.MAX_SAFE_INTEGER;

export interface SqliteStoreOptions {
  /** How long a write waits for a write lock held by another process before it is refused with 503. */
  writeLockWaitMs: number;
  /** Whether writes record their events in the outbox (EVENTS=on). */
  events: boolean;
}

/**
 * The SQLite adapter. Reads run the prepared statements directly (WAL readers never wait for the
 * writer). Writes run a domain script (domain/writes.ts) as one synchronous unit of work handed to
 * GroupCommit, which runs it inside a `BEGIN IMMEDIATE` transaction: no `await` inside, and the write
 * lock is taken up front; while another process holds it, writes wait for it on a timer, never
 * blocking the event loop, and are refused with 503 past `writeLockWaitMs`. A full disk is 507.
 */
export class SqliteStore extends ScriptedWrites implements Store {
  private readonly q: Statements;
  private readonly writes: WriteStorage;
  private readonly commits: GroupCommit;
  private readonly remembered = new ClaimMemory();
  /** A claim's first moves, answered from memory when it knows them (see claimCoupon). */
  private readonly fromMemory: KnownAnswers<ClaimStorage>;
  /** null for an in-memory database, which has no WAL. */
  private readonly wal: WalKeeper | null;
  readonly outbox: SqliteOutbox;
  /** The events the units of the running batch have written (see run). */
  private readonly written: EventType[] = [];

  constructor(
    private readonly db: SqliteDb,
    options: SqliteStoreOptions,
  ) {
    super();
    this.q = prepareStatements(db);
    this.commits = new GroupCommit(db.$client, {
      lockWaitMs: options.writeLockWaitMs,
      // The events of a batch count once it has committed (see run).
      afterBatch: (committed) => {
        if (committed) this.outbox.tally.add(this.written);
        this.written.length = 0;
      },
    });
    this.outbox = new SqliteOutbox(this.q, this.commits, options.events, db.$client.filename);
    const { remembered, commits, q } = this;
    this.writes = sqliteWrites(q, this.written, {
      definition: (couponId, definition) => commits.onCommit(() => remembered.rememberDefinition(couponId, definition)),
      user: (userId) => commits.onCommit(() => remembered.rememberUser(userId)),
      holding: (userId, couponId) => commits.onCommit(() => remembered.rememberHolding(userId, couponId)),
      soldOut: (couponId) =>
        commits.onCommit(() => {
          // Read after the commit that showed it sold out: every holder there will ever be.
          if (!remembered.isSoldOut(couponId)) {
            remembered.rememberSoldOut(
              couponId,
              q.holdersOf.all({ couponId }).map((row) => row.userId),
            );
          }
        }),
    });
    this.fromMemory = {
      findCoupon: (couponId) => remembered.definition(couponId) ?? UNKNOWN,
      userExists: (userId) => remembered.knowsUser(userId) || UNKNOWN,
      knownRefusal: (userId, couponId) => remembered.refusal(userId, couponId) ?? UNKNOWN,
    };
    this.wal = db.$client.filename === ":memory:" ? null : new WalKeeper(db.$client, this.commits);
  }

  /**
   * A domain write script, run to its end inside one unit of the group commit. The events it wrote
   * count once the batch has committed: a unit that throws is rolled back alone, and so are its
   * events here; a batch that fails wrote none.
   */
  protected run<R>(script: (recordEvents: boolean) => Script<WriteStorage, R>): Promise<R> {
    const recordEvents = this.outbox.recording;
    return this.write(() => runSync(script(recordEvents), this.writes));
  }

  /**
   * One synchronous unit of write work, committed with the others of this event-loop turn in a single
   * `BEGIN IMMEDIATE` transaction (see GroupCommit). A throw rolls back this unit's effects only, the
   * events it wrote included.
   */
  private write<R>(work: () => R): Promise<R> {
    return this.commits.run(() => {
      const mark = this.written.length;
      try {
        return work();
      } catch (error) {
        this.written.length = mark;
        throw error;
      }
    });
  }

  placeOrder(command: PlaceOrder): Promise<Idempotent<model.Order>> {
    return this.run((recordEvents) => placeOrder(command, recordEvents));
  }

  /**
   * A claim is answered from memory when its facts are known (ClaimMemory: the drop, the user, "holds
   * it", "sold out"), which is how nearly every loser of a stampede is answered: no statement, no
   * write lock, no wait for a commit. Otherwise it goes on inside a unit of the group commit, where
   * losers not yet known are found by two reads (knownRefusal) before any write, in the batch's
   * transaction that is open anyway. (Measured earlier: answering those reads before the write lock
   * instead, as separate statements, halved claims/s, 9.2k against 20.4k.)
   */
  async claimCoupon(command: ClaimCoupon): Promise<model.ClaimedCoupon> {
    const running = claimCoupon(command, this.outbox.recording);
    const next = advanceSync(running, running.next(), this.fromMemory);
    if (next.done) return next.value;
    return this.write(() => runSync(running, this.writes, next));
  }

  private requireUser(userId: number): model.User {
    const user = this.q.userById.get({ id: userId });
    if (user === undefined) throw notFound.user(userId);
    return user;
  }

  async createUser(name: string, now: number): Promise<model.User> {
    return this.write(() => must(this.q.insertUser.get({ name, now }), "the new user"));
  }

  async getUser(userId: number): Promise<model.User> {
    return this.requireUser(userId);
  }

  async listPointHistory(userId: number, page: model.PageRequest): Promise<model.Page<model.PointHistoryEntry>> {
    this.requireUser(userId);
    const rows = this.q.historyPage.all({ userId, before: page.after ?? NO_UPPER_BOUND, limit: page.limit + 1 });
    return toPage(rows.map(toHistoryEntry), page.limit, (entry) => entry.id);
  }

  async createProduct(input: NewProduct, now: number): Promise<model.Product> {
    return this.write(() => must(this.q.insertProduct.get({ ...input, now }), "the new product"));
  }

  async getProduct(productId: number): Promise<model.Product> {
    const product = this.q.productById.get({ id: productId });
    if (product === undefined) throw notFound.product(productId);
    return product;
  }

  async listProducts(page: model.PageRequest): Promise<model.Page<model.Product>> {
    const rows = this.q.productsPage.all({ after: page.after ?? 0, limit: page.limit + 1 });
    return toPage(rows, page.limit, (product) => product.id);
  }

  async popularProducts(query: PopularQuery): Promise<model.PopularProduct[]> {
    return this.q.popular.all({ ...query });
  }

  async createCoupon(input: model.NewCoupon, now: number): Promise<model.Coupon> {
    return this.write(() => toCoupon(must(this.q.insertCoupon.get({ ...input, now }), "the new coupon")));
  }

  async getCoupon(couponId: number): Promise<model.Coupon> {
    const row = this.q.couponById.get({ id: couponId });
    if (row === undefined) throw notFound.coupon(couponId);
    return toCoupon(row);
  }

  async listUserCoupons(query: UserCouponsQuery): Promise<model.UserCouponWithCoupon[]> {
    this.requireUser(query.userId);
    return toUserCoupons(this.q.userCouponsOf.all({ userId: query.userId }), query.status, query.now);
  }

  async getOrder(orderId: number): Promise<model.Order> {
    const row = this.q.orderById.get({ id: orderId });
    if (row === undefined) throw notFound.order(orderId);
    return orderOf(row, this.q.orderLines.all({ orderId }));
  }

  async listUserOrders(userId: number, page: model.PageRequest): Promise<model.Page<model.Order>> {
    this.requireUser(userId);
    const rows = this.q.ordersPage.all({ userId, before: page.after ?? NO_UPPER_BOUND, limit: page.limit + 1 });
    const result = toPage(rows, page.limit, (row) => row.id);
    return {
      items: result.items.map((row) => orderOf(row, this.q.orderLines.all({ orderId: row.id }))),
      nextCursor: result.nextCursor,
    };
  }

  async listEvents(after: number, limit: number): Promise<StoredEvent[]> {
    return this.outbox.eventsAfter(after, limit);
  }

  async purgeIdempotencyKeys(before: number): Promise<number> {
    return this.write(() => changesOf(this.q.purgeIdempotency.run({ before })));
  }

  /**
   * Ready: the database answers, has every migration this build knows, and takes writes. In normal
   * operation that last part costs nothing: only after a write failed for a fault (a full disk, the
   * write lock held elsewhere past the bound) does each check try a tiny write of its own, until one
   * commits. On a full disk it first checkpoints the WAL (which gives its space back once the
   * database file has room again) and asks for STORAGE_HEADROOM_BYTES free before trying: a write that
   * only fits in the WAL's leftover room would make /ready flap.
   */
  async ping(): Promise<void> {
    assertMigrated("sqlite", (this.q.latestMigration.get() as { at: unknown } | null)?.at);
    const fault = this.commits.lastFault;
    if (fault === null) return;
    if (fault.code === "STORAGE_FULL") {
      this.wal?.reclaim();
      if (freeBytes(this.db.$client.filename) < STORAGE_HEADROOM_BYTES) throw fault;
    }
    this.commits.probeWrite();
  }

  /**
   * Commits what is queued (writes waiting for a lock held elsewhere wait up to their bound), then
   * closes. The checkpoint and optimize are housekeeping, not durability: every commit is in the WAL
   * already, which the next open replays. On a full disk or with the lock held elsewhere they fail,
   * and closing goes on: close() does not throw.
   */
  async close(): Promise<void> {
    this.wal?.stop();
    await this.outbox.relayLock.release();
    await this.commits.settled();
    const client = this.db.$client;
    for (const housekeeping of ["PRAGMA optimize", "PRAGMA wal_checkpoint(TRUNCATE)"]) {
      try {
        client.run(housekeeping);
      } catch {
        // see above
      }
    }
    client.close();
  }
}
