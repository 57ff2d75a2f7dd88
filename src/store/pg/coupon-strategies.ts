import type postgres from "postgres";
import type { ClaimEvents, EventTally } from "../../domain/events.ts";
import type { AsyncStorage } from "../../domain/script.ts";
import type { ClaimCoupon, ClaimRefusal, ClaimStorage } from "../../domain/writes.ts";
import type { RedisLink } from "../../redis-link.ts";
import { ClaimMemory, type DropDefinition } from "../claim-memory.ts";
import { must } from "../rows.ts";
import type { PgDb } from "./database.ts";
import { RedisCouponGate } from "./redis-gate.ts";
import { couponDefinition, insertHolding, type NewHolding, PgWrites, type Tx } from "./writes.ts";

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
 * A claim's facts that never change once committed (ClaimMemory: the drop's definition, the user,
 * "sold out" with the drop's holders), read from PostgreSQL the first time and remembered, so a
 * claim's checks, and nearly every loser of a stampede, cost PostgreSQL nothing.
 */
export class ClaimFacts {
  private readonly remembered = new ClaimMemory();
  private readonly loadingHolders = new Set<number>();
  readonly moves: Pick<ClaimMoves, "findCoupon" | "userExists">;

  constructor(private readonly client: postgres.Sql) {
    this.moves = { findCoupon: (id) => this.definition(id), userExists: (id) => this.userExists(id) };
  }

  private async definition(couponId: number): Promise<DropDefinition | null> {
    const known = this.remembered.definition(couponId);
    if (known !== undefined) return known;
    const row = await couponDefinition(this.client, couponId);
    if (row === null) return null;
    this.remembered.rememberDefinition(couponId, row);
    return row;
  }

  private async userExists(userId: number): Promise<boolean> {
    if (this.remembered.knowsUser(userId)) return true;
    const [user] = await this.client`SELECT 1 FROM users WHERE id = ${userId}`;
    if (user === undefined) return false;
    this.remembered.rememberUser(userId);
    return true;
  }

  /** The refusal known from memory, else null: ask PostgreSQL. */
  refusalFromMemory(userId: number, couponId: number): ClaimRefusal | null {
    return this.remembered.refusal(userId, couponId);
  }

  /**
   * Passes a committed answer through, remembering what it says: a claim the user won (autocommit:
   * committed when answered), a holding, or a drop sold out (then its holders are read once).
   */
  noting<A extends number | ClaimRefusal | null>(userId: number, couponId: number, answer: A): A {
    if (typeof answer === "number" || answer === "ALREADY_CLAIMED") this.remembered.rememberHolding(userId, couponId);
    else if (answer === "SOLD_OUT" && !this.remembered.isSoldOut(couponId) && !this.loadingHolders.has(couponId)) {
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
      this.remembered.rememberSoldOut(
        couponId,
        rows.map((row) => row.user_id),
      );
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
    const [coupon] = await this.tx<{ issuedQuantity: number; totalQuantity: number }[]>`
      SELECT issued_quantity AS "issuedQuantity", total_quantity AS "totalQuantity"
      FROM coupons WHERE id = ${holding.couponId} FOR UPDATE`;
    const locked = must(coupon, "the locked coupon");
    // Holding the drop's lock, nobody else can claim it meanwhile: read, decide, write.
    const [held] = await this.tx`
      SELECT 1 FROM user_coupons WHERE user_id = ${holding.userId} AND coupon_id = ${holding.couponId}`;
    if (held !== undefined) return "ALREADY_CLAIMED";
    if (locked.issuedQuantity >= locked.totalQuantity) return "SOLD_OUT";
    const inserted = await insertHolding(this.tx, holding);
    if (inserted === null) return "ALREADY_CLAIMED";
    await this.tx`UPDATE coupons SET issued_quantity = ${locked.issuedQuantity + 1} WHERE id = ${holding.couponId}`;
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
      const [row] = await this.tx<{ issuedQuantity: number; totalQuantity: number; version: number }[]>`
        SELECT issued_quantity AS "issuedQuantity", total_quantity AS "totalQuantity", version
        FROM coupons WHERE id = ${holding.couponId}`;
      const coupon = must(row, "the coupon");
      if (coupon.issuedQuantity >= coupon.totalQuantity) {
        await this.tx`DELETE FROM user_coupons WHERE id = ${held}`;
        return "SOLD_OUT";
      }
      const won = await this.tx`
        UPDATE coupons SET issued_quantity = ${coupon.issuedQuantity + 1}, version = ${coupon.version + 1}
        WHERE id = ${holding.couponId} AND version = ${coupon.version} RETURNING id`;
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
          this.facts.noting(userId, couponId, await lockFreeRefusal(this.client, userId, couponId)),
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
        takeCoupon: async (holding, claim) =>
          this.facts.noting(holding.userId, holding.couponId, await this.taken(holding, claim)),
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
  redis?: { client: RedisLink; prefix: string },
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
