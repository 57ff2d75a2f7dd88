import type { RedisClient } from "bun";
import { and, eq } from "drizzle-orm";
import type postgres from "postgres";
import type { CouponDefinition } from "../../domain/coupon.ts";
import { DomainError } from "../../domain/errors.ts";
import type { ClaimEvents, EventTally } from "../../domain/events.ts";
import type { AsyncStorage } from "../../domain/script.ts";
import type { ClaimCoupon, ClaimRefusal, ClaimStorage } from "../../domain/writes.ts";
import { must } from "../rows.ts";
import type { PgDb } from "./database.ts";
import { coupons, userCoupons } from "./schema.ts";
import { insertHolding, type NewHolding, PgWrites, type Tx } from "./writes.ts";

/**
 * The classic ways to hand out a limited supply on PostgreSQL, selectable with COUPON_STRATEGY. All of
 * them run the same claim script (domain/writes.ts), so they answer exactly like the SQLite store (same
 * checks, same order, same codes), and all of them keep the database's own guards (the unique
 * (user, coupon) index and `issued <= total`), so a strategy can be slow but never wrong.
 *
 * Every strategy answers the claim's first moves before any transaction and without a lock: the drop's
 * definition and the user's existence from ClaimFacts, and the refusals a loser gets ("holds it",
 * "none left") from committed rows. Only a claim that may win reaches the drop's row.
 */
export const couponStrategies = ["atomic", "sharded", "pessimistic", "optimistic", "redis"] as const;
export type CouponStrategy = (typeof couponStrategies)[number];

type ClaimMoves = Partial<AsyncStorage<ClaimStorage>>;

/** How a strategy runs one claim: the moves answered before any transaction, and what undoes its write's failure. */
export interface ClaimPlan {
  before: ClaimMoves;
  undo?(error: unknown): Promise<void>;
}

export interface Strategy {
  /** The data moves inside a transaction, one instance per transaction. */
  readonly Writes: new (
    tx: Tx,
  ) => PgWrites;
  plan(claim: ClaimCoupon): ClaimPlan;
  /** A drop was created (the redis strategy mirrors it). */
  created?(couponId: number, totalQuantity: number): Promise<void>;
  /** Start-up: copy every drop into the strategy's own state (redis); how many. */
  rebuild?(): Promise<number>;
}

/**
 * What a claim checks first and never changes once created: a drop's definition (there is no update
 * or delete) and a user's existence. Served from memory after the first read, so a claim's checks
 * cost PostgreSQL nothing.
 *
 * It also remembers the drops it has seen sold out, with their holders. Both facts are final once a
 * drop is sold out: the supply never grows, a holding is never deleted, and a new holding needs a
 * slot. A sold-out answer is only ever read from committed rows, and every slot was taken in the
 * same transaction as its holding, so the holders read after it are all of them. From then on the
 * stampede's losers (nearly every request) are answered without a round trip.
 */
export class ClaimFacts {
  private readonly definitions = new Map<number, CouponDefinition>();
  private readonly knownUsers = new Set<number>();
  private readonly soldOutDrops = new Map<number, ReadonlySet<number>>();
  private rememberedHolders = 0;
  private readonly loadingHolders = new Set<number>();
  readonly moves: Pick<ClaimMoves, "findCoupon" | "userExists">;

  constructor(private readonly client: postgres.Sql) {
    this.moves = { findCoupon: (id) => this.definition(id), userExists: (id) => this.userExists(id) };
  }

  private async definition(couponId: number): Promise<CouponDefinition | null> {
    let definition = this.definitions.get(couponId);
    if (definition === undefined) {
      // bigint columns arrive as text from postgres.js: the timestamps are cast here, where it is said.
      const [row] = await this.client<CouponDefinition[]>`
        SELECT id, name, discount_type AS "discountType", discount_value::float8 AS "discountValue",
               max_discount::float8 AS "maxDiscount", min_order_amount::float8 AS "minOrderAmount",
               issue_starts_at::float8 AS "issueStartsAt", issue_ends_at::float8 AS "issueEndsAt",
               valid_days AS "validDays", total_quantity AS "totalQuantity", created_at::float8 AS "createdAt"
        FROM coupons WHERE id = ${couponId}`;
      if (row === undefined) return null;
      definition = row;
      if (this.definitions.size >= 100_000) this.definitions.clear();
      this.definitions.set(couponId, definition);
    }
    return definition;
  }

  private async userExists(userId: number): Promise<boolean> {
    if (this.knownUsers.has(userId)) return true;
    const [user] = await this.client`SELECT 1 FROM users WHERE id = ${userId}`;
    if (user === undefined) return false;
    if (this.knownUsers.size >= 1_000_000) this.knownUsers.clear();
    this.knownUsers.add(userId);
    return true;
  }

  /** The refusal for a drop known to be sold out ("holds it" first, as everywhere), else null: ask PostgreSQL. */
  refusalFromMemory(userId: number, couponId: number): ClaimRefusal | null {
    const holders = this.soldOutDrops.get(couponId);
    if (holders === undefined) return null;
    return holders.has(userId) ? "ALREADY_CLAIMED" : "SOLD_OUT";
  }

  /** Passes an answer through, remembering the drop once PostgreSQL has said it is sold out. */
  noting<A extends number | ClaimRefusal | null>(couponId: number, answer: A): A {
    if (answer === "SOLD_OUT" && !this.soldOutDrops.has(couponId) && !this.loadingHolders.has(couponId)) {
      this.loadingHolders.add(couponId);
      void this.rememberSoldOut(couponId).finally(() => this.loadingHolders.delete(couponId));
    }
    return answer;
  }

  private async rememberSoldOut(couponId: number): Promise<void> {
    try {
      const rows = await this.client<
        { user_id: number }[]
      >`SELECT user_id FROM user_coupons WHERE coupon_id = ${couponId}`;
      // Bounded: a few million ids at most, then start over (the drops still selling are read again).
      if (this.rememberedHolders + rows.length > 2_000_000) {
        this.soldOutDrops.clear();
        this.rememberedHolders = 0;
      }
      this.soldOutDrops.set(couponId, new Set(rows.map((row) => row.user_id)));
      this.rememberedHolders += rows.length;
    } catch {
      // Not remembered: the next sold-out answer tries again, and PostgreSQL answers meanwhile.
    }
  }
}

/** "Holds it", else "none left", read from committed rows without a lock (one prepared statement). */
async function lockFreeRefusal(client: postgres.Sql, userId: number, couponId: number): Promise<ClaimRefusal | null> {
  const [row] = await client<{ holds: boolean; sold_out: boolean }[]>`
    SELECT EXISTS (SELECT 1 FROM user_coupons WHERE user_id = ${userId} AND coupon_id = ${couponId}) AS holds,
           issued_quantity >= total_quantity AS sold_out
    FROM coupons WHERE id = ${couponId}`;
  if (row?.holds) return "ALREADY_CLAIMED";
  if (row?.sold_out) return "SOLD_OUT";
  return null;
}

/** pessimistic: `SELECT … FOR UPDATE` serialises the winners of a drop on its row, then check and write. */
class PessimisticWrites extends PgWrites {
  override async takeCoupon(holding: NewHolding, claim: ClaimEvents | null): Promise<number | ClaimRefusal> {
    const [coupon] = await this.tx.select().from(coupons).where(eq(coupons.id, holding.couponId)).for("update");
    const locked = must(coupon, "the locked coupon");
    // Holding the drop's lock, nobody else can claim it meanwhile: read, decide, write.
    const [held] = await this.tx
      .select({ id: userCoupons.id })
      .from(userCoupons)
      .where(and(eq(userCoupons.userId, holding.userId), eq(userCoupons.couponId, holding.couponId)));
    if (held !== undefined) return "ALREADY_CLAIMED";
    if (locked.issuedQuantity >= locked.totalQuantity) return "SOLD_OUT";
    const inserted = await insertHolding(this.tx, holding);
    if (inserted === null) return "ALREADY_CLAIMED";
    await this.tx
      .update(coupons)
      .set({ issuedQuantity: locked.issuedQuantity + 1 })
      .where(eq(coupons.id, holding.couponId));
    await this.recordClaim(inserted, locked.issuedQuantity + 1 === locked.totalQuantity, claim);
    return inserted;
  }
}

const CAS_ATTEMPTS = 100;

/**
 * optimistic: insert the holding, read the version, then compare-and-set; a lost race re-reads and
 * tries again with jitter. The pool bounds how many claims compete at once, so the attempts needed
 * stay far below the bound.
 */
class OptimisticWrites extends PgWrites {
  override async takeCoupon(holding: NewHolding, claim: ClaimEvents | null): Promise<number | ClaimRefusal> {
    const held = await insertHolding(this.tx, holding);
    if (held === null) return "ALREADY_CLAIMED";
    for (let attempt = 1; ; attempt++) {
      const [row] = await this.tx.select().from(coupons).where(eq(coupons.id, holding.couponId));
      const coupon = must(row, "the coupon");
      if (coupon.issuedQuantity >= coupon.totalQuantity) {
        await this.tx.delete(userCoupons).where(eq(userCoupons.id, held));
        return "SOLD_OUT";
      }
      const won = await this.tx
        .update(coupons)
        .set({ issuedQuantity: coupon.issuedQuantity + 1, version: coupon.version + 1 })
        .where(and(eq(coupons.id, holding.couponId), eq(coupons.version, coupon.version)))
        .returning({ id: coupons.id });
      if (won.length > 0) {
        await this.recordClaim(held, coupon.issuedQuantity + 1 === coupon.totalQuantity, claim);
        return held;
      }
      if (attempt >= CAS_ATTEMPTS) throw new Error(`optimistic claim lost ${CAS_ATTEMPTS} races in a row`);
      await Bun.sleep(Math.random() * Math.min(20, attempt));
    }
  }
}

/** A strategy that writes inside a transaction with `Writes`, after the lock-free moves. */
class InTransaction implements Strategy {
  constructor(
    readonly Writes: new (tx: Tx) => PgWrites,
    protected readonly client: postgres.Sql,
    protected readonly facts: ClaimFacts,
  ) {}

  plan(): ClaimPlan {
    return {
      before: {
        ...this.facts.moves,
        knownRefusal: async (userId, couponId) =>
          this.facts.refusalFromMemory(userId, couponId) ??
          this.facts.noting(couponId, await lockFreeRefusal(this.client, userId, couponId)),
      },
    };
  }
}

/**
 * atomic: the whole write is one call of `take_coupon` (drizzle/pg/0001_take_coupon.sql: the two
 * guards, lock-free refusals first), in autocommit: one round trip, no BEGIN or COMMIT, and the
 * drop's row is locked only from its UPDATE to the commit. No transaction is opened at all.
 */
class Atomic extends InTransaction {
  constructor(
    client: postgres.Sql,
    facts: ClaimFacts,
    private readonly tally: EventTally,
  ) {
    super(PgWrites, client, facts);
  }

  override plan(): ClaimPlan {
    // take_coupon reads the refusals itself, in the same round trip.
    return {
      before: {
        ...this.facts.moves,
        knownRefusal: async (userId, couponId) => this.facts.refusalFromMemory(userId, couponId),
        takeCoupon: async (holding, claim) => this.facts.noting(holding.couponId, await this.taken(holding, claim)),
      },
    };
  }

  /** The claim's answer; the events the function wrote (autocommit: committed once it answers) are counted. */
  private async taken(holding: NewHolding, claim: ClaimEvents | null): Promise<number | ClaimRefusal> {
    const { taken, sold_out } = await this.take(holding, claim?.claimedAfterId ?? null, claim?.soldOutData() ?? null);
    if (taken > 0 && claim !== null)
      this.tally.add(sold_out ? ["coupon.claimed", "coupon.sold_out"] : ["coupon.claimed"]);
    return takenOrRefusal(taken);
  }

  protected async take(holding: NewHolding, claimedAfterId: string | null, soldOutData: string | null) {
    const { userId, couponId, issuedAt, expiresAt } = holding;
    const [row] = await this.client<TakeAnswer[]>`
      SELECT taken, sold_out FROM take_coupon(${userId}::int, ${couponId}::int, ${issuedAt}::bigint,
        ${expiresAt}::bigint, ${claimedAfterId}::text, ${soldOutData}::text)`;
    return must(row, "take_coupon's answer");
  }
}

/** What the take_coupon functions answer: the new user coupon's id (or -1, -2), and whether it took the last one. */
interface TakeAnswer {
  taken: number;
  sold_out: boolean;
}

/**
 * sharded: the atomic strategy without a hot row. The drop's supply is split over counter rows on its
 * first claim, and a claim takes a slot from a random shard with room, passing over shards being
 * claimed (`take_coupon_sharded`, drizzle/pg/0003_sharded_coupons.sql; one round trip, autocommit).
 * Claims on one drop no longer queue on one row lock until each commit is flushed.
 */
class Sharded extends Atomic {
  protected override async take(holding: NewHolding, claimedAfterId: string | null, soldOutData: string | null) {
    const { userId, couponId, issuedAt, expiresAt } = holding;
    const [row] = await this.client<TakeAnswer[]>`
      SELECT taken, sold_out FROM take_coupon_sharded(${userId}::int, ${couponId}::int, ${issuedAt}::bigint,
        ${expiresAt}::bigint, ${claimedAfterId}::text, ${soldOutData}::text)`;
    return must(row, "take_coupon_sharded's answer");
  }
}

/** The functions' answer: the new user coupon's id, -1 already claimed, -2 sold out. */
function takenOrRefusal(taken: number): number | ClaimRefusal {
  if (taken === -1) return "ALREADY_CLAIMED";
  if (taken === -2) return "SOLD_OUT";
  return taken;
}

export function strategyOf(
  name: CouponStrategy,
  db: PgDb,
  tally: EventTally,
  redis?: { client: RedisClient; prefix: string },
): Strategy {
  const facts = new ClaimFacts(db.$client);
  switch (name) {
    case "atomic":
      return new Atomic(db.$client, facts, tally);
    case "sharded":
      return new Sharded(db.$client, facts, tally);
    case "pessimistic":
      return new InTransaction(PessimisticWrites, db.$client, facts);
    case "optimistic":
      return new InTransaction(OptimisticWrites, db.$client, facts);
    case "redis":
      if (redis === undefined) throw new Error("the redis coupon strategy needs a Redis client");
      return new RedisCouponGate(db, facts, redis.client, redis.prefix);
  }
}

/**
 * redis: the report's final design. A Lua script checks the drop's user set and remaining count and
 * reserves the slot in one step, so most losers never reach PostgreSQL; the winner then writes the
 * row there with the atomic guards, and a failed write hands the reservation back.
 */
export class RedisCouponGate implements Strategy {
  readonly Writes = PgWrites;

  constructor(
    private readonly db: PgDb,
    private readonly facts: ClaimFacts,
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  /**
   * The reservation answers `knownRefusal`; `undo` hands it back when the PostgreSQL write fails. A
   * retried transaction asks again: the reservation is made once per claim.
   */
  plan(claim: ClaimCoupon): ClaimPlan {
    let reserved = false;
    return {
      before: {
        ...this.facts.moves,
        knownRefusal: async (userId, couponId) => {
          if (reserved) return null;
          const refusal = await this.reserve(userId, couponId);
          reserved = refusal === null;
          return refusal;
        },
      },
      undo: async (error) => {
        if (!reserved) return;
        // Redis was ahead of PostgreSQL: give the slot back (and the user too, unless they do hold it).
        const holds = error instanceof DomainError && error.code === "COUPON_ALREADY_ISSUED";
        await this.release(claim, !holds);
      },
    };
  }

  private keys(couponId: number): [string, string] {
    return [`${this.prefix}coupon:${couponId}:remaining`, `${this.prefix}coupon:${couponId}:users`];
  }

  // 1 reserved, 0 already holds, -1 sold out, -2 not loaded yet.
  private static readonly RESERVE = `
    local remaining = redis.call('GET', KEYS[1])
    if not remaining then return -2 end
    if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return 0 end
    if tonumber(remaining) <= 0 then return -1 end
    redis.call('DECR', KEYS[1])
    redis.call('SADD', KEYS[2], ARGV[1])
    return 1`;

  // Hands a slot back; ARGV[2] = '1' also forgets the user (else PostgreSQL says they hold it already).
  private static readonly RELEASE = `
    if ARGV[2] == '1' then
      if redis.call('SREM', KEYS[2], ARGV[1]) == 1 then redis.call('INCR', KEYS[1]) end
    else
      redis.call('INCR', KEYS[1])
    end
    return 1`;

  // Loads one drop unless it is there already: remaining = total - issued, users = holders.
  private static readonly LOAD = `
    if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
    redis.call('DEL', KEYS[2])
    for i = 2, #ARGV do redis.call('SADD', KEYS[2], ARGV[i]) end
    redis.call('SET', KEYS[1], ARGV[1])
    return 1`;

  private async run(script: string, couponId: number, args: (string | number)[]): Promise<number> {
    const [remaining, holders] = this.keys(couponId);
    return Number(await this.redis.send("EVAL", [script, "2", remaining, holders, ...args.map(String)]));
  }

  /** Copies a drop's state from PostgreSQL (`force`: even if Redis has it, as at start-up). */
  async load(couponId: number, force: boolean): Promise<boolean> {
    const [coupon] = await this.db.select().from(coupons).where(eq(coupons.id, couponId));
    if (coupon === undefined) return false;
    const holders = await this.db
      .select({ userId: userCoupons.userId })
      .from(userCoupons)
      .where(eq(userCoupons.couponId, couponId));
    if (force) await this.redis.send("DEL", this.keys(couponId));
    await this.run(RedisCouponGate.LOAD, couponId, [
      coupon.totalQuantity - coupon.issuedQuantity,
      ...holders.map((h) => h.userId),
    ]);
    return true;
  }

  /** Rebuilds every drop from PostgreSQL, so Redis never disagrees with it after a restart. */
  async rebuild(): Promise<number> {
    const all = await this.db.select({ id: coupons.id }).from(coupons);
    for (const { id } of all) await this.load(id, true);
    return all.length;
  }

  /** Reserves a slot for the user in Redis, or says why not. */
  private async reserve(userId: number, couponId: number): Promise<"ALREADY_CLAIMED" | "SOLD_OUT" | null> {
    let verdict = await this.run(RedisCouponGate.RESERVE, couponId, [userId]);
    if (verdict === -2) {
      // Unknown here: a drop created by another process, or Redis restarted. PostgreSQL decides.
      await this.load(couponId, false);
      verdict = await this.run(RedisCouponGate.RESERVE, couponId, [userId]);
    }
    if (verdict === 0) return "ALREADY_CLAIMED";
    if (verdict === -1) return "SOLD_OUT";
    if (verdict !== 1) throw new Error(`unexpected reservation verdict ${verdict}`);
    return null;
  }

  /** Undoes a reservation whose PostgreSQL write failed. */
  private release(claim: ClaimCoupon, forgetUser: boolean): Promise<number> {
    return this.run(RedisCouponGate.RELEASE, claim.couponId, [claim.userId, forgetUser ? "1" : "0"]);
  }

  /** A new drop starts with its full supply and nobody holding it. */
  async created(couponId: number, totalQuantity: number): Promise<void> {
    await this.run(RedisCouponGate.LOAD, couponId, [totalQuantity]);
  }
}
