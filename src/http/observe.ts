import type { MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import type { Logger } from "../logger.ts";
import { childCache, type Metrics } from "../observability/metrics.ts";
import type { AppEnv } from "./auth.ts";

const acceptableRequestId = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Every request: a request id (the caller's `X-Request-Id` when it is sane, else a new UUID), echoed
 * back; its duration by route template and status; the in-flight gauge; and one log line at info for
 * a `sample` share of requests (errors are logged with their stack by the error handler regardless).
 */
export function observe(metrics: Metrics | null, logger: Logger, sample: number): MiddlewareHandler<AppEnv> {
  const logRequests = sample > 0 && logger.enabled("info");
  // The duration histogram's child for "method route status".
  const durationOf =
    metrics === null
      ? null
      : childCache((key) => metrics.httpDuration.labels(...(key.split(" ") as [string, string, string])));
  return async (c, next) => {
    const offered = c.req.header("x-request-id");
    const requestId = offered !== undefined && acceptableRequestId.test(offered) ? offered : crypto.randomUUID();
    c.set("requestId", requestId);
    c.header("X-Request-Id", requestId);
    const started = performance.now();
    if (metrics !== null) metrics.requests.inFlight++;
    try {
      await next();
    } finally {
      if (metrics !== null) metrics.requests.inFlight--;
      const seconds = (performance.now() - started) / 1000;
      // The template of the route that answered ("/api/coupons/:userId"), never the raw path; a
      // request that only middleware ("*", "/api/*") saw matched no route.
      const matched = routePath(c);
      const route = matched.endsWith("*") ? "unmatched" : matched;
      durationOf?.(`${c.req.method} ${route} ${c.res.status}`).observe(seconds);
      if (logRequests && (sample >= 1 || Math.random() < sample)) {
        logger.info("request", {
          requestId,
          method: c.req.method,
          path: c.req.path,
          route,
          status: c.res.status,
          ms: Math.round(seconds * 100_000) / 100,
        });
      }
    }
  };
}
