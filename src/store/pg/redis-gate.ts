import type { RedisClient } from "bun";
import { eq } from "drizzle-orm";
import { DomainError } from "../../domain/errors.ts";
import type { ClaimCoupon } from "../../domain/writes.ts";
import type { ClaimFacts, ClaimPlan, Strategy } from "./coupon-strategies.ts";
import type { PgDb } from "./database.ts";
import { coupons, userCoupons } from "./schema.ts";
import { PgWrites } from "./writes.ts";

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
