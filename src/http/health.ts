import { createRoute, z } from "@hono/zod-openapi";
import { createRouter, type RouteDeps } from "./router.ts";

const health = createRoute({
  method: "get",
  path: "/health",
  tags: ["Operations"],
  summary: "The process is up",
  responses: {
    200: { description: "Up", content: { "application/json": { schema: z.object({ status: z.literal("ok") }) } } },
  },
});

const ready = createRoute({
  method: "get",
  path: "/ready",
  tags: ["Operations"],
  summary: "The database answers and takes writes",
  responses: {
    200: {
      description: "Ready",
      content: { "application/json": { schema: z.object({ status: z.literal("ready") }) } },
    },
    503: {
      description: "The database does not answer, or cannot take writes (a full disk, its write lock held elsewhere)",
      content: { "application/json": { schema: z.object({ status: z.literal("unavailable") }) } },
    },
  },
});

export function healthRoutes({ store, logger }: RouteDeps) {
  return createRouter()
    .openapi(health, (c) => c.json({ status: "ok" as const }, 200))
    .openapi(ready, async (c) => {
      try {
        await store.ping();
        return c.json({ status: "ready" as const }, 200);
      } catch (error) {
        logger.warn("readiness check failed", { error: String(error) });
        return c.json({ status: "unavailable" as const }, 503);
      }
    });
}
