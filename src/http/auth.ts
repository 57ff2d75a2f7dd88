import type { Context, MiddlewareHandler } from "hono";
import { RedisStore, rateLimiter, type Store } from "hono-rate-limiter";
import type { TokenVerifier } from "../auth/tokens.ts";
import { assertAdmin, assertMayActFor, assertMaySeeOrder, type Principal } from "../domain/access.ts";
import { refused } from "../domain/errors.ts";
import type { Logger } from "../logger.ts";
import type { RedisLink } from "../redis-link.ts";
import { problemOf, problemResponse } from "./problem.ts";

export type AppEnv = { Variables: { principal: Principal | null; requestId: string } };

const bearer = /^Bearer +([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+) *$/i;

/**
 * Reads the caller from `Authorization: Bearer <JWT>`. No header: an anonymous caller (public routes
 * serve them; the others answer 401). A header that is present but not a valid token is always 401.
 */
export function authenticate(verifier: TokenVerifier): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const header = c.req.header("authorization");
    if (header === undefined) {
      c.set("principal", null);
      return next();
    }
    const token = bearer.exec(header)?.[1];
    if (token === undefined) throw refused.malformedAuthorization();
    c.set("principal", verifier.cached(token) ?? (await verifier.verify(token)));
    return next();
  };
}

/** The authenticated caller; throws 401 for an anonymous one. */
export function callerOf(c: Context<AppEnv>): Principal {
  const principal = c.get("principal");
  if (principal === null || principal === undefined) {
    throw refused.tokenRequired();
  }
  return principal;
}

/**
 * The user id, once the caller may act for that user (themself, or any user for an admin): the one
 * way routes check whose data they touch. Throws 401 for an anonymous caller, 403 for anyone else.
 */
export function actingFor(c: Context<AppEnv>, userId: number): number {
  assertMayActFor(callerOf(c), userId);
  return userId;
}

/** The order, once the caller may see it (its owner, or an admin); anyone else is told it does not exist. */
export function seenBy<T extends { id: number; userId: number }>(c: Context<AppEnv>, order: T): T {
  assertMaySeeOrder(callerOf(c), order);
  return order;
}

export const requireCaller: MiddlewareHandler<AppEnv> = async (c, next) => {
  callerOf(c);
  await next();
};

export const requireAdmin: MiddlewareHandler<AppEnv> = async (c, next) => {
  assertAdmin(callerOf(c));
  await next();
};

/**
 * A per-caller limit (hono-rate-limiter), keyed by the token's subject, never by a header a client
 * could spoof. Counted in this process's memory unless a shared `store` is given (several workers:
 * `redisRateLimitStores`).
 */
export function perCallerLimit(
  action: string,
  limit: number,
  windowMs: number,
  store?: Store<AppEnv>,
): MiddlewareHandler<AppEnv> {
  if (limit === 0) return async (_c, next) => next();
  return rateLimiter<AppEnv>({
    windowMs,
    limit,
    standardHeaders: "draft-7",
    keyGenerator: (c) => `${action}:${callerOf(c).subject}`,
    ...(store === undefined ? {} : { store }),
    handler: (c) =>
      problemResponse(
        c,
        problemOf(
          "RATE_LIMITED",
          `At most ${limit} ${action} requests per ${windowMs / 1000} s per caller; retry later.`,
        ),
      ),
  });
}

/**
 * Makes rate-limit stores that count in Redis, shared by every worker: hono-rate-limiter's own
 * RedisStore (its Lua scripts, atomic per key), over a RedisLink. One store per limiter, as the
 * library sets its window on the store.
 *
 * A Redis outage fails open: requests are let through uncounted, with one warning per outage, rather
 * than answered 500 or 503. The limit guards against a noisy caller; the drops and orders stay exact
 * without it, so losing it briefly costs less than refusing every claim. The link bounds each command
 * (REDIS_TIMEOUT_MS) and reconnects by itself, with backoff, once Redis is back.
 */
export function redisRateLimitStores(redis: RedisLink, prefix: string, logger: Logger): () => Store<AppEnv> {
  // The client interface RedisStore asks for (the shape of @upstash/redis), in plain Redis commands.
  const client = {
    scriptLoad: async (script: string) => (await redis.send("SCRIPT", ["LOAD", script])) as string,
    evalsha: async <TArgs extends unknown[], TData = unknown>(sha1: string, keys: string[], args: TArgs) =>
      (await redis.send("EVALSHA", [sha1, String(keys.length), ...keys, ...args.map(String)])) as TData,
    decr: async (key: string) => (await redis.send("DECR", [key])) as number,
    del: async (key: string) => (await redis.send("DEL", [key])) as number,
  };

  let down = false;
  const failed = (error: unknown) => {
    if (down) return;
    down = true;
    logger.warn("rate-limit store unreachable: requests pass uncounted until Redis is back", {
      error: error instanceof Error ? String(error.cause ?? error.message) : String(error),
    });
  };
  const answered = () => {
    if (!down) return;
    down = false;
    logger.info("rate-limit store reachable again");
  };

  return () => {
    const shared = new RedisStore<AppEnv>({ client, prefix });
    return {
      prefix,
      localKeys: false,
      init: (options) => shared.init(options),
      increment: async (key) => {
        try {
          const counted = await shared.increment(key);
          answered();
          return counted;
        } catch (error) {
          failed(error);
          return { totalHits: 0 };
        }
      },
      decrement: (key) => shared.decrement(key).catch(failed),
      resetKey: (key) => shared.resetKey(key).catch(failed),
    };
  };
}
