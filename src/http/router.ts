import { createHash } from "node:crypto";
import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { TokenVerifier } from "../auth/tokens.ts";
import type { RateLimits } from "../config.ts";
import type { Clock } from "../domain/time.ts";
import type { Logger } from "../logger.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { IdempotentRequest, Store } from "../store/port.ts";
import type { AppEnv } from "./auth.ts";
import { problemOf, problemResponse } from "./problem.ts";

export interface AppDeps {
  store: Store;
  clock: Clock;
  logger: Logger;
  verifier: TokenVerifier;
  rateLimits: RateLimits;
  /** Prometheus metrics; null: no /metrics and no request timing. */
  metrics: Metrics | null;
  /** Share of requests logged at info (0..1). */
  logSample: number;
}

/** What the routers get from createApp: the dependencies plus the per-caller limiters built from config. */
export interface RouteDeps extends AppDeps {
  rateLimiters: { couponClaims: MiddlewareHandler<AppEnv>; orders: MiddlewareHandler<AppEnv> };
}

const targetNames: Record<string, string> = { json: "body", param: "path", query: "query", header: "header" };

/** Documents a route as needing `Authorization: Bearer <token>`. */
export const bearerAuth = [{ bearerAuth: [] }];

/** A router whose request validation failures are answered as 400 problem+json, like every other error. */
export function createRouter(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result, c) => {
      if (result.success) return;
      const where = targetNames[result.target] ?? result.target;
      const errors = result.error.issues.map((issue) => ({
        path: [where, ...issue.path.map(String)].join("."),
        message: issue.message,
      }));
      const detail = errors.map((e) => `${e.path}: ${e.message}`).join("; ");
      return problemResponse(c, problemOf("VALIDATION_FAILED", detail, errors));
    },
  });
}

/**
 * The idempotency record for a request: its fingerprint covers the method, the path and the validated
 * body, so the same key sent with anything different is recognised as a different request.
 */
export function idempotentRequest(
  c: Context,
  key: string | undefined,
  body: unknown,
  statusCode: number,
): IdempotentRequest | null {
  if (key === undefined) return null;
  const fingerprint = createHash("sha256")
    .update(`${c.req.method} ${c.req.path}\n${JSON.stringify(body)}`)
    .digest("base64url");
  return { key, fingerprint, statusCode };
}

/**
 * Sends a stored response exactly as it was first sent. Typed `never` because the route's typed
 * responses describe the same body, which the type checker cannot see through the stored text.
 */
export function replay(c: Context, stored: { statusCode: number; body: string }): never {
  return c.body(stored.body, stored.statusCode as ContentfulStatusCode, {
    "Content-Type": "application/json",
    "Idempotent-Replayed": "true",
  }) as never;
}

/**
 * Sends JSON the write already built: what c.json would send for the same value, without building it
 * again. Typed `never`, as replay is.
 */
export function sendJson(c: Context, json: string, status: ContentfulStatusCode): never {
  return c.body(json, status, { "Content-Type": "application/json" }) as never;
}
