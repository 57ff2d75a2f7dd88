import { createRoute, z } from "@hono/zod-openapi";
import { limits } from "../domain/limits.ts";
import { actingFor, requireAdmin, requireCaller } from "./auth.ts";
import { authProblems, bodyProblems, problems } from "./problem.ts";
import { bearerAuth, createRouter, idempotentRequest, type RouteDeps, replay } from "./router.ts";
import { idempotencyHeaders, nameField, pageOf, pageQuery, timestamp, userIdParams } from "./schemas.ts";

export const userSchema = z
  .object({ id: z.int(), name: z.string(), balance: z.int().openapi({ description: "Points, in won." }) })
  .openapi("User");

export const pointBalanceSchema = z.object({ userId: z.int(), balance: z.int() }).openapi("PointBalance");

const pointHistoryEntrySchema = z
  .object({
    id: z.int(),
    type: z.enum(["CHARGE", "USE", "REFUND"]),
    amount: z.int(),
    balanceAfter: z.int(),
    orderId: z.int().nullable(),
    createdAt: timestamp,
  })
  .openapi("PointHistoryEntry");

const tags = ["Users and points"];

const createUser = createRoute({
  method: "post",
  path: "/api/users",
  tags,
  summary: "Create a user (admin)",
  security: bearerAuth,
  middleware: [requireAdmin] as const,
  request: {
    body: { required: true, content: { "application/json": { schema: z.strictObject({ name: nameField }) } } },
  },
  responses: {
    201: { description: "Created", content: { "application/json": { schema: userSchema } } },
    ...problems(...bodyProblems, ...authProblems),
  },
});

const getUser = createRoute({
  method: "get",
  path: "/api/users/{userId}",
  tags,
  summary: "Get a user",
  security: bearerAuth,
  middleware: [requireCaller] as const,
  request: { params: userIdParams },
  responses: {
    200: { description: "The user", content: { "application/json": { schema: userSchema } } },
    ...problems("VALIDATION_FAILED", ...authProblems, "USER_NOT_FOUND"),
  },
});

const getPoints = createRoute({
  method: "get",
  path: "/api/users/{userId}/points",
  tags,
  summary: "Get a user's point balance",
  security: bearerAuth,
  middleware: [requireCaller] as const,
  request: { params: userIdParams },
  responses: {
    200: { description: "The balance", content: { "application/json": { schema: pointBalanceSchema } } },
    ...problems("VALIDATION_FAILED", ...authProblems, "USER_NOT_FOUND"),
  },
});

const chargePoints = createRoute({
  method: "post",
  path: "/api/users/{userId}/points/charge",
  tags,
  summary: "Charge points",
  security: bearerAuth,
  middleware: [requireCaller] as const,
  description: `Adds 1..${limits.maxCharge} points; a balance never exceeds ${limits.maxBalance}. Accepts an Idempotency-Key.`,
  request: {
    params: userIdParams,
    headers: idempotencyHeaders,
    body: {
      required: true,
      content: {
        "application/json": {
          schema: z.strictObject({ amount: z.int().min(1).max(limits.maxCharge).openapi({ example: 10_000 }) }),
        },
      },
    },
  },
  responses: {
    200: { description: "The new balance", content: { "application/json": { schema: pointBalanceSchema } } },
    ...problems(...bodyProblems, ...authProblems, "USER_NOT_FOUND", "BALANCE_LIMIT_EXCEEDED", "IDEMPOTENCY_KEY_REUSED"),
  },
});

const pointHistory = createRoute({
  method: "get",
  path: "/api/users/{userId}/points/history",
  tags,
  summary: "List point history, newest first",
  security: bearerAuth,
  middleware: [requireCaller] as const,
  request: { params: userIdParams, query: pageQuery },
  responses: {
    200: {
      description: "A page of history",
      content: { "application/json": { schema: pageOf(pointHistoryEntrySchema, "PointHistoryPage") } },
    },
    ...problems("VALIDATION_FAILED", ...authProblems, "USER_NOT_FOUND"),
  },
});

export function usersRoutes({ store, clock }: RouteDeps) {
  return createRouter()
    .openapi(createUser, async (c) => {
      const { name } = c.req.valid("json");
      return c.json(await store.createUser(name, clock.now()), 201);
    })
    .openapi(getUser, async (c) => c.json(await store.getUser(actingFor(c, c.req.valid("param").userId)), 200))
    .openapi(getPoints, async (c) => {
      const user = await store.getUser(actingFor(c, c.req.valid("param").userId));
      return c.json({ userId: user.id, balance: user.balance }, 200);
    })
    .openapi(chargePoints, async (c) => {
      const userId = actingFor(c, c.req.valid("param").userId);
      const body = c.req.valid("json");
      const idempotency = idempotentRequest(c, c.req.valid("header")["idempotency-key"], body, 200);
      const result = await store.chargePoints({ userId, amount: body.amount, now: clock.now(), idempotency });
      if (result.replayed) return replay(c, result);
      return c.json(result.value, 200);
    })
    .openapi(pointHistory, async (c) => {
      const { limit, cursor } = c.req.valid("query");
      const userId = actingFor(c, c.req.valid("param").userId);
      return c.json(await store.listPointHistory(userId, { limit, after: cursor }), 200);
    });
}
