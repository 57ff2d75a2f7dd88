import type { RedisClient } from "bun";
import { and, eq, lt, sql } from "drizzle-orm";
import { assertIssuable, expiryOf } from "../../domain/coupon.ts";
import { DomainError, notFound } from "../../domain/errors.ts";
import type { PgDb } from "./database.ts";
import { coupons, userCoupons, users } from "./schema.ts";

/**
 * The classic ways to hand out a limited supply on PostgreSQL, selectable with COUPON_STRATEGY. All of
 * them answer exactly like the SQLite store (same checks, same order, same codes), and all of them keep
 * the database's own guards (the unique (user, coupon) index and `issued <= total`), so a strategy can
 * be slow but never wrong.
 */
export const couponStrategies = ["atomic", "pessimistic", "optimistic", "redis"] as const;
export type CouponStrategy = (typeof couponStrategies)[number];

type Tx = Parameters<Parameters<PgDb["transaction"]>[0]>[0];

export interface Claim {
  userId: number;
  couponId: number;
  now: number;
}

export interface Claimed {
  id: number;
  expiresAt: number;
}

const alreadyIssued = () => new DomainError("COUPON_ALREADY_ISSUED", "This user already holds this coupon.");
const soldOut = () => new DomainError("COUPON_SOLD_OUT", "Every coupon of this drop has been issued.");

/** Coupon exists → user exists → inside the issue window; `lock` reads the coupon row FOR UPDATE. */
async function checkedCoupon(tx: Tx, claim: Claim, lock: boolean) {
  const query = tx.select().from(coupons).where(eq(coupons.id, claim.couponId));
  const [coupon] = lock ? await query.for("update") : await query;
  if (coupon === undefined) throw notFound.coupon(claim.couponId);
  const [user] = await tx.select({ id: users.id }).from(users).where(eq(users.id, claim.userId));
  if (user === undefined) throw notFound.user(claim.userId);
  assertIssuable(coupon, claim.now);
  return coupon;
}

/** The one-per-user guard: the unique (user_id, coupon_id) index turns a second claim into no row. */
async function insertHolding(tx: Tx, claim: Claim, validDays: number): Promise<Claimed> {
  const expiresAt = expiryOf(claim.now, validDays);
  const [held] = await tx
    .insert(userCoupons)
    .values({ userId: claim.userId, couponId: claim.couponId, status: "AVAILABLE", issuedAt: claim.now, expiresAt })
    .onConflictDoNothing({ target: [userCoupons.userId, userCoupons.couponId] })
    .returning({ id: userCoupons.id });
  if (held === undefined) throw alreadyIssued();
  return { id: held.id, expiresAt };
}

/** `UPDATE … SET issued = issued + 1 WHERE issued < total RETURNING`: READ COMMITTED re-checks the WHERE on the newest row. */
async function takeSlot(tx: Tx, couponId: number): Promise<void> {
  const taken = await tx
    .update(coupons)
    .set({ issuedQuantity: sql`${coupons.issuedQuantity} + 1` })
    .where(and(eq(coupons.id, couponId), lt(coupons.issuedQuantity, coupons.totalQuantity)))
    .returning({ id: coupons.id });
  if (taken.length === 0) throw soldOut();
}

/** The write of the redis strategy, once Redis has reserved the slot: the atomic guards, without re-checking. */
export async function writeReserved(tx: Tx, claim: Claim, validDays: number): Promise<Claimed> {
  const claimed = await insertHolding(tx, claim, validDays);
  await takeSlot(tx, claim.couponId);
  return claimed;
}

/** atomic: one conditional UPDATE decides; no lock is held longer than that statement. */
export async function claimAtomic(tx: Tx, claim: Claim): Promise<Claimed> {
  const coupon = await checkedCoupon(tx, claim, false);
  const claimed = await insertHolding(tx, claim, coupon.validDays);
  await takeSlot(tx, claim.couponId);
  return claimed;
}

/** pessimistic: `SELECT … FOR UPDATE` serialises every claim of a drop on its row, then check and write. */
export async function claimPessimistic(tx: Tx, claim: Claim): Promise<Claimed> {
  const coupon = await checkedCoupon(tx, claim, true);
  const claimed = await insertHolding(tx, claim, coupon.validDays);
  if (coupon.issuedQuantity >= coupon.totalQuantity) throw soldOut();
  await tx
    .update(coupons)
    .set({ issuedQuantity: coupon.issuedQuantity + 1 })
    .where(eq(coupons.id, claim.couponId));
  return claimed;
}

const CAS_ATTEMPTS = 100;

/**
 * optimistic: read the version, then compare-and-set; a lost race re-reads and tries again with
 * jitter. The pool bounds how many claims compete at once, so the attempts needed stay far below
 * the bound.
 */
export async function claimOptimistic(tx: Tx, claim: Claim): Promise<Claimed> {
  const first = await checkedCoupon(tx, claim, false);
  const claimed = await insertHolding(tx, claim, first.validDays);
  let coupon = first;
  for (let attempt = 1; ; attempt++) {
    if (coupon.issuedQuantity >= coupon.totalQuantity) throw soldOut();
    const won = await tx
      .update(coupons)
      .set({ issuedQuantity: coupon.issuedQuantity + 1, version: coupon.version + 1 })
      .where(and(eq(coupons.id, claim.couponId), eq(coupons.version, coupon.version)))
      .returning({ id: coupons.id });
    if (won.length > 0) return claimed;
    if (attempt >= CAS_ATTEMPTS) throw new Error(`optimistic claim lost ${CAS_ATTEMPTS} races in a row`);
    await Bun.sleep(Math.random() * Math.min(20, attempt));
    const [fresh] = await tx.select().from(coupons).where(eq(coupons.id, claim.couponId));
    coupon = fresh as typeof first;
  }
}

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
  private readonly definitions = new Map<
    number,
    { issueStartsAt: number | null; issueEndsAt: number | null; validDays: number }
  >();
  private readonly knownUsers = new Set<number>();

  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  /** Coupon exists → user exists → inside the issue window, as the other strategies check. */
  async check(db: PgDb, claim: Claim): Promise<{ validDays: number }> {
    let definition = this.definitions.get(claim.couponId);
    if (definition === undefined) {
      const [row] = await db.select().from(coupons).where(eq(coupons.id, claim.couponId));
      if (row === undefined) throw notFound.coupon(claim.couponId);
      definition = { issueStartsAt: row.issueStartsAt, issueEndsAt: row.issueEndsAt, validDays: row.validDays };
      this.definitions.set(claim.couponId, definition);
    }
    if (!this.knownUsers.has(claim.userId)) {
      const [user] = await db.select({ id: users.id }).from(users).where(eq(users.id, claim.userId));
      if (user === undefined) throw notFound.user(claim.userId);
      if (this.knownUsers.size >= 1_000_000) this.knownUsers.clear();
      this.knownUsers.add(claim.userId);
    }
    assertIssuable(definition, claim.now);
    return definition;
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
  async load(db: PgDb, couponId: number, force: boolean): Promise<boolean> {
    const [coupon] = await db.select().from(coupons).where(eq(coupons.id, couponId));
    if (coupon === undefined) return false;
    const holders = await db
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
  async rebuild(db: PgDb): Promise<number> {
    const all = await db.select({ id: coupons.id }).from(coupons);
    for (const { id } of all) await this.load(db, id, true);
    return all.length;
  }

  /** Reserves a slot for the user, or throws the answer PostgreSQL would have given. */
  async reserve(db: PgDb, claim: Claim): Promise<void> {
    let verdict = await this.run(RedisCouponGate.RESERVE, claim.couponId, [claim.userId]);
    if (verdict === -2) {
      // Unknown here: a drop created by another process, or Redis restarted. PostgreSQL decides.
      if (!(await this.load(db, claim.couponId, false))) throw notFound.coupon(claim.couponId);
      verdict = await this.run(RedisCouponGate.RESERVE, claim.couponId, [claim.userId]);
    }
    if (verdict === 0) throw alreadyIssued();
    if (verdict === -1) throw soldOut();
    if (verdict !== 1) throw new Error(`unexpected reservation verdict ${verdict}`);
  }

  /** Undoes a reservation whose PostgreSQL write failed. */
  release(claim: Claim, forgetUser: boolean): Promise<number> {
    return this.run(RedisCouponGate.RELEASE, claim.couponId, [claim.userId, forgetUser ? "1" : "0"]);
  }

  /** A new drop starts with its full supply and nobody holding it. */
  async created(couponId: number, totalQuantity: number): Promise<void> {
    await this.run(RedisCouponGate.LOAD, couponId, [totalQuantity]);
  }
}
