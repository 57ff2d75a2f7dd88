import { eq } from "drizzle-orm";
import type postgres from "postgres";
import { DomainError, Unavailable } from "../../domain/errors.ts";
import type { ClaimCoupon } from "../../domain/writes.ts";
import type { RedisLink } from "../../redis-link.ts";
import { must } from "../rows.ts";
import type { ClaimFacts, ClaimPlan, Strategy } from "./coupon-strategies.ts";
import type { PgDb } from "./database.ts";
import { coupons, userCoupons } from "./schema.ts";
import { PgWrites } from "./writes.ts";

/**
 * Where a database's gate keeps its state in Redis: `flashcart:<id>:`, the random id the database's
 * migration 0006 made (database_identity). Two databases on one Redis, or a database and itself
 * after a reset, never share a key.
 */
export async function redisPrefixOf(client: postgres.Sql): Promise<string> {
  const [row] = await client<{ id: string }[]>`SELECT id FROM database_identity`;
  return `flashcart:${must(row, "the database's identity").id}:`;
}

/**
 * redis: the report's final design. A Lua script checks the drop's user set and remaining count and
 * reserves the slot in one step, so most losers never reach PostgreSQL; the winner then writes the
 * row there with the atomic guards, and a failed write hands the reservation back.
 *
 * Redis is a copy of PostgreSQL here, never the truth: a reservation only decides who may try, and
 * PostgreSQL's guards (one per user, `issued <= total`) decide who gets one, so no state of Redis,
 * whole, half or stale, can issue more than the supply.
 *
 * Redis may go away (see RedisLink: a command fails within REDIS_TIMEOUT_MS with a 503, and the link
 * reconnects with backoff). Over each new connection, a drop is loaded again from PostgreSQL before
 * its first claim, over whatever Redis held for it: Redis may have restarted empty, or run a
 * reservation or a release whose answer never came back. A load copies committed rows, so it can
 * only leave Redis more generous than the truth (claims under way elsewhere are not in it yet): a few
 * more claims then reach PostgreSQL, which refuses them.
 */
export class RedisCouponGate implements Strategy {
  readonly Writes = PgWrites;
  /** Drops loaded from PostgreSQL over the link's connection number `loadedIn`. */
  private loaded = new Set<number>();
  private loadedIn = -1;
  /** The load under way for a drop: claims arriving meanwhile wait for it rather than load again. */
  private readonly loading = new Map<number, Promise<void>>();

  constructor(
    private readonly db: PgDb,
    private readonly facts: ClaimFacts,
    private readonly redis: RedisLink,
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
        try {
          await this.release(claim, handBack(error));
        } catch (failed) {
          // Redis is away: the write's own answer stands. The slot comes back with the drop's next
          // load, over the link's next connection.
          if (!(failed instanceof Unavailable)) throw failed;
        }
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

  // Undoes a reservation as ARGV[2] says (see handBack); the slot only if the user was still there
  // with 'both', since a load since the reservation has counted it already.
  private static readonly RELEASE = `
    if ARGV[2] == 'slot' then
      redis.call('INCR', KEYS[1])
      return 1
    end
    if redis.call('SREM', KEYS[2], ARGV[1]) == 1 and ARGV[2] == 'both' then redis.call('INCR', KEYS[1]) end
    return 1`;

  // Replaces a drop's state, whatever was there: remaining = ARGV[1], users = ARGV[2..].
  private static readonly STORE = `
    redis.call('DEL', KEYS[2])
    for i = 2, #ARGV do redis.call('SADD', KEYS[2], ARGV[i]) end
    redis.call('SET', KEYS[1], ARGV[1])
    return 1`;

  private async run(script: string, couponId: number, args: (string | number)[]): Promise<number> {
    const [remaining, holders] = this.keys(couponId);
    return Number(await this.redis.send("EVAL", [script, "2", remaining, holders, ...args.map(String)]));
  }

  /** Copies a drop's state from PostgreSQL over what Redis holds: remaining = total - issued, users = holders. */
  private async load(couponId: number): Promise<void> {
    const [coupon] = await this.db.select().from(coupons).where(eq(coupons.id, couponId));
    if (coupon === undefined) return;
    const holders = await this.db
      .select({ userId: userCoupons.userId })
      .from(userCoupons)
      .where(eq(userCoupons.couponId, couponId));
    await this.store(
      couponId,
      coupon.totalQuantity - coupon.issuedQuantity,
      holders.map((h) => h.userId),
    );
  }

  private async store(couponId: number, remaining: number, holders: number[]): Promise<void> {
    await this.run(RedisCouponGate.STORE, couponId, [remaining, ...holders]);
    // Read right after the answer: the connection it ran over.
    if (this.loadedIn !== this.redis.generation) {
      this.loaded = new Set();
      this.loadedIn = this.redis.generation;
    }
    this.loaded.add(couponId);
  }

  /** Loads the drop, sharing a load already under way. */
  private loadOnce(couponId: number): Promise<void> {
    let pending = this.loading.get(couponId);
    if (pending === undefined) {
      pending = this.load(couponId).finally(() => this.loading.delete(couponId));
      this.loading.set(couponId, pending);
    }
    return pending;
  }

  /** Loads every drop from PostgreSQL now (at start-up) rather than at its first claim. */
  async rebuild(): Promise<number> {
    const all = await this.db.select({ id: coupons.id }).from(coupons);
    for (const { id } of all) await this.loadOnce(id);
    return all.length;
  }

  /** Reserves a slot for the user in Redis, or says why not. */
  private async reserve(userId: number, couponId: number): Promise<"ALREADY_CLAIMED" | "SOLD_OUT" | null> {
    if (this.loadedIn !== this.redis.generation || !this.loaded.has(couponId)) await this.loadOnce(couponId);
    let verdict = await this.run(RedisCouponGate.RESERVE, couponId, [userId]);
    if (verdict === -2) {
      // Gone from Redis since it was loaded over this very connection (flushed, evicted): load it again.
      await this.loadOnce(couponId);
      verdict = await this.run(RedisCouponGate.RESERVE, couponId, [userId]);
    }
    if (verdict === 0) return "ALREADY_CLAIMED";
    if (verdict === -1) return "SOLD_OUT";
    if (verdict !== 1) throw new Error(`unexpected reservation verdict ${verdict}`);
    return null;
  }

  /** Undoes a reservation whose PostgreSQL write failed. */
  private release(claim: ClaimCoupon, what: HandBack): Promise<number> {
    return this.run(RedisCouponGate.RELEASE, claim.couponId, [claim.userId, what]);
  }

  /**
   * A new drop starts with its full supply and nobody holding it, over whatever Redis held under its
   * keys (a database restored from a backup hands out ids again). With Redis away the drop is still
   * created: its first claim loads it, once Redis answers.
   */
  async created(couponId: number, totalQuantity: number): Promise<void> {
    try {
      await this.store(couponId, totalQuantity, []);
    } catch (error) {
      if (!(error instanceof Unavailable)) throw error;
    }
  }
}

type HandBack = "slot" | "user" | "both";

/**
 * What a reservation hands back when PostgreSQL's write fails. A refusal means Redis was ahead of
 * PostgreSQL: "holds it" (the user was not in Redis, the supply was right): the slot, not the user;
 * "none left" (Redis had a slot too many, after a load raced claims under way): the user, not the
 * slot, so that Redis comes down to the truth rather than send every later claim to PostgreSQL. Any
 * other failure (PostgreSQL away): both.
 */
function handBack(error: unknown): HandBack {
  const code = error instanceof DomainError ? error.code : null;
  if (code === "COUPON_ALREADY_ISSUED") return "slot";
  if (code === "COUPON_SOLD_OUT") return "user";
  return "both";
}
