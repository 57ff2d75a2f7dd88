import type { RedisClient } from "bun";
import { and, eq } from "drizzle-orm";
import type { IssueWindow } from "../../domain/coupon.ts";
import { DomainError } from "../../domain/errors.ts";
import type { AsyncStorage } from "../../domain/script.ts";
import type { ClaimCoupon, ClaimStorage } from "../../domain/writes.ts";
import { must } from "../rows.ts";
import type { PgDb } from "./database.ts";
import { coupons, userCoupons, users } from "./schema.ts";
import { PgWrites, type Tx } from "./writes.ts";

/**
 * The classic ways to hand out a limited supply on PostgreSQL, selectable with COUPON_STRATEGY. All of
 * them answer exactly like the SQLite store (same checks, same order, same codes), and all of them keep
 * the database's own guards (the unique (user, coupon) index and `issued <= total`), so a strategy can
 * be slow but never wrong.
 */
export const couponStrategies = ["atomic", "pessimistic", "optimistic", "redis"] as const;
export type CouponStrategy = (typeof couponStrategies)[number];

type CouponRow = typeof coupons.$inferSelect;

/** pessimistic: `SELECT … FOR UPDATE` serialises every claim of a drop on its row, then check and write. */
class PessimisticWrites extends PgWrites {
  private locked: CouponRow | undefined;

  override async findCoupon(couponId: number) {
    const [coupon] = await this.tx.select().from(coupons).where(eq(coupons.id, couponId)).for("update");
    this.locked = coupon;
    return coupon ?? null;
  }

  override async takeSlot(couponId: number): Promise<boolean> {
    const coupon = must(this.locked, "the locked coupon");
    if (coupon.issuedQuantity >= coupon.totalQuantity) return false;
    await this.tx
      .update(coupons)
      .set({ issuedQuantity: coupon.issuedQuantity + 1 })
      .where(eq(coupons.id, couponId));
    return true;
  }
}

const CAS_ATTEMPTS = 100;

/**
 * optimistic: read the version, then compare-and-set; a lost race re-reads and tries again with
 * jitter. The pool bounds how many claims compete at once, so the attempts needed stay far below
 * the bound.
 */
class OptimisticWrites extends PgWrites {
  private seen: CouponRow | undefined;

  override async findCoupon(couponId: number) {
    const [coupon] = await this.tx.select().from(coupons).where(eq(coupons.id, couponId));
    this.seen = coupon;
    return coupon ?? null;
  }

  override async takeSlot(couponId: number): Promise<boolean> {
    let coupon = must(this.seen, "the coupon read");
    for (let attempt = 1; ; attempt++) {
      if (coupon.issuedQuantity >= coupon.totalQuantity) return false;
      const won = await this.tx
        .update(coupons)
        .set({ issuedQuantity: coupon.issuedQuantity + 1, version: coupon.version + 1 })
        .where(and(eq(coupons.id, couponId), eq(coupons.version, coupon.version)))
        .returning({ id: coupons.id });
      if (won.length > 0) return true;
      if (attempt >= CAS_ATTEMPTS) throw new Error(`optimistic claim lost ${CAS_ATTEMPTS} races in a row`);
      await Bun.sleep(Math.random() * Math.min(20, attempt));
      const [fresh] = await this.tx.select().from(coupons).where(eq(coupons.id, couponId));
      coupon = must(fresh, "the coupon re-read");
    }
  }
}

/**
 * The data moves of each strategy inside the transaction. atomic and redis write with the atomic
 * guards: one conditional UPDATE decides, no lock held longer than that statement.
 */
export const writesOf: Record<CouponStrategy, new (tx: Tx) => PgWrites> = {
  atomic: PgWrites,
  pessimistic: PessimisticWrites,
  optimistic: OptimisticWrites,
  redis: PgWrites,
};

/** The claim moves the redis strategy answers before any PostgreSQL transaction is opened. */
export type EarlyClaimMoves = Pick<AsyncStorage<ClaimStorage>, "findCoupon" | "userExists" | "knownRefusal">;

/**
 * redis: the report's final design. A Lua script checks the drop's user set and remaining count and
 * reserves the slot in one step, so most losers never reach PostgreSQL; the winner then writes the
 * row there with the atomic guards, and a failed write hands the reservation back.
 */
export class RedisCouponGate {
  /**
   * Coupon definitions and user ids never change once created (there is no update or delete), so
   * the checks that come before a claim (exists, issue window) are served from memory after the
   * first read, and losers of a drop cost PostgreSQL nothing at all.
   */
  private readonly definitions = new Map<number, IssueWindow & { validDays: number }>();
  private readonly knownUsers = new Set<number>();

  constructor(
    private readonly db: PgDb,
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  /**
   * The moves of one claim answered here, and the way to undo its reservation when the PostgreSQL
   * write fails. A retried transaction asks again: the reservation is made once per claim.
   */
  claim(claim: ClaimCoupon): { moves: EarlyClaimMoves; undo(error: unknown): Promise<void> } {
    let reserved = false;
    const moves: EarlyClaimMoves = {
      findCoupon: (couponId) => this.definition(couponId),
      userExists: (userId) => this.userExists(userId),
      knownRefusal: async (userId, couponId) => {
        if (reserved) return null;
        const refusal = await this.reserve(userId, couponId);
        reserved = refusal === null;
        return refusal;
      },
    };
    const undo = async (error: unknown) => {
      if (!reserved) return;
      // Redis was ahead of PostgreSQL: give the slot back (and the user too, unless they do hold it).
      const holds = error instanceof DomainError && error.code === "COUPON_ALREADY_ISSUED";
      await this.release(claim, !holds);
    };
    return { moves, undo };
  }

  private async definition(couponId: number): Promise<(IssueWindow & { validDays: number }) | null> {
    let definition = this.definitions.get(couponId);
    if (definition === undefined) {
      const [row] = await this.db.select().from(coupons).where(eq(coupons.id, couponId));
      if (row === undefined) return null;
      definition = { issueStartsAt: row.issueStartsAt, issueEndsAt: row.issueEndsAt, validDays: row.validDays };
      this.definitions.set(couponId, definition);
    }
    return definition;
  }

  private async userExists(userId: number): Promise<boolean> {
    if (this.knownUsers.has(userId)) return true;
    const [user] = await this.db.select({ id: users.id }).from(users).where(eq(users.id, userId));
    if (user === undefined) return false;
    if (this.knownUsers.size >= 1_000_000) this.knownUsers.clear();
    this.knownUsers.add(userId);
    return true;
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
