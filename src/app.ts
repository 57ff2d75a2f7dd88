import { OpenAPIHono } from "@hono/zod-openapi";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import type { Store as RateLimitStore } from "hono-rate-limiter";
import { DomainError, Unavailable } from "./domain/errors.ts";
import { type AppEnv, authenticate, perCallerLimit } from "./http/auth.ts";
import { strictUtf8Json } from "./http/body.ts";
import { couponsRoutes } from "./http/coupons.ts";
import { docsRoutes } from "./http/docs.ts";
import { eventsRoutes } from "./http/events.ts";
import { healthRoutes } from "./http/health.ts";
import { observe } from "./http/observe.ts";
import { ordersRoutes } from "./http/orders.ts";
import { problemOf, problemResponse } from "./http/problem.ts";
import { productsRoutes } from "./http/products.ts";
import type { AppDeps, RouteDeps } from "./http/router.ts";
import { securityHeaders } from "./http/security-headers.ts";
import { usersRoutes } from "./http/users.ts";

export type { AppDeps } from "./http/router.ts";

/** Request bodies are small JSON documents; anything larger is refused before it is read. */
export const MAX_BODY_BYTES = 16 * 1024;

/**
 * `rateLimitStore`: makes the store each per-caller limit counts in, shared by several workers
 * (`redisRateLimitStores`); absent, each limit counts in this process's memory.
 */
export function createApp(deps: AppDeps & { rateLimitStore?: () => RateLimitStore<AppEnv> }): OpenAPIHono<AppEnv> {
  const { logger, rateLimits, rateLimitStore } = deps;
  const app = new OpenAPIHono<AppEnv>();
  const routeDeps: RouteDeps = {
    ...deps,
    rateLimiters: {
      couponClaims: perCallerLimit("coupon-claim", rateLimits.couponClaims, rateLimits.windowMs, rateLimitStore?.()),
      orders: perCallerLimit("order", rateLimits.orders, rateLimits.windowMs, rateLimitStore?.()),
    },
  };

  app.use(observe(deps.metrics, logger, deps.logSample));
  app.use(securityHeaders);
  app.use("/api/*", authenticate(deps.verifier));
  app.use(
    "/api/*",
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: (c) =>
        problemResponse(c, problemOf("PAYLOAD_TOO_LARGE", `Request bodies are limited to ${MAX_BODY_BYTES} bytes.`)),
    }),
  );
  app.use("/api/*", strictUtf8Json);

  app.route("/", healthRoutes(routeDeps));
  app.route("/", usersRoutes(routeDeps));
  app.route("/", productsRoutes(routeDeps));
  app.route("/", couponsRoutes(routeDeps));
  app.route("/", ordersRoutes(routeDeps));
  app.route("/", eventsRoutes(routeDeps));

  app.openAPIRegistry.registerComponent("securitySchemes", "bearerAuth", {
    type: "http",
    scheme: "bearer",
    bearerFormat: "JWT",
    description: "An HS256 JWT with `sub` (user id, or an operator name for admins), `role` (user | admin) and `exp`.",
  });

  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "flashcart",
      version: "0.1.0",
      description:
        "First-come coupon drops and orders that stay exact under a stampede. Errors are application/problem+json with a stable `code`.",
    },
  });
  app.route("/", docsRoutes());
  const { metrics } = deps;
  if (metrics !== null) {
    app.get("/metrics", async (c) =>
      c.body(await metrics.registry.metrics(), 200, { "Content-Type": metrics.registry.contentType }),
    );
  }

  app.notFound((c) => problemResponse(c, problemOf("NOT_FOUND", `No route for ${c.req.method} ${c.req.path}.`)));

  app.onError((error, c) => {
    if (error instanceof Unavailable) {
      logger.warn("dependency unavailable", {
        requestId: c.get("requestId"),
        method: c.req.method,
        path: c.req.path,
        code: error.code,
        error: String(error.cause ?? error.message),
      });
      return problemResponse(c, problemOf(error.code, error.message), {
        "Retry-After": String(error.retryAfterSeconds),
      });
    }
    if (error instanceof DomainError) {
      const headers = error.code === "UNAUTHENTICATED" ? { "WWW-Authenticate": 'Bearer realm="flashcart"' } : undefined;
      return problemResponse(c, problemOf(error.code, error.message), headers);
    }
    if (error instanceof HTTPException) {
      // Hono's own 4xx: malformed JSON (400), a body that is not JSON (415), a body over the limit (413).
      if (error.status === 415) return problemResponse(c, problemOf("UNSUPPORTED_MEDIA_TYPE", error.message));
      if (error.status === 413) return problemResponse(c, problemOf("PAYLOAD_TOO_LARGE", error.message));
      if (error.status < 500) return problemResponse(c, problemOf("VALIDATION_FAILED", error.message));
    }
    logger.error("unhandled error", {
      requestId: c.get("requestId"),
      method: c.req.method,
      path: c.req.path,
      error: error instanceof Error ? (error.stack ?? error.message) : String(error),
    });
    return problemResponse(c, problemOf("INTERNAL_ERROR", "The server failed to handle this request."));
  });

  return app;
}
