import type { Context, MiddlewareHandler } from "hono";
import { rateLimiter } from "hono-rate-limiter";
import type { TokenVerifier } from "../auth/tokens.ts";
import { assertAdmin, assertMayActFor, type Principal } from "../domain/access.ts";
import { refused } from "../domain/errors.ts";
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

export const requireCaller: MiddlewareHandler<AppEnv> = async (c, next) => {
  callerOf(c);
  await next();
};

export const requireAdmin: MiddlewareHandler<AppEnv> = async (c, next) => {
  assertAdmin(callerOf(c));
  await next();
};

/**
 * A per-caller limit (hono-rate-limiter, in-process memory store), keyed by the token's subject,
 * never by a header a client could spoof. The memory store suits one process; several processes
 * (PostgreSQL deployments) need a shared store such as hono-rate-limiter's Redis store.
 */
export function perCallerLimit(action: string, limit: number, windowMs: number): MiddlewareHandler<AppEnv> {
  if (limit === 0) return async (_c, next) => next();
  return rateLimiter<AppEnv>({
    windowMs,
    limit,
    standardHeaders: "draft-7",
    keyGenerator: (c) => `${action}:${callerOf(c).subject}`,
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
