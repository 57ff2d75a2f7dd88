import { createRoute, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { limits } from "../domain/limits.ts";
import { type AppEnv, actingFor, requireCaller, seenBy } from "./auth.ts";
import { authProblems, bodyProblems, problems } from "./problem.ts";
import { bearerAuth, createRouter, idempotentRequest, type RouteDeps, replay, sendJson } from "./router.ts";
import { idempotencyHeaders, idField, idParam, pageOf, pageQuery, timestamp, userIdParams } from "./schemas.ts";

export const orderSchema = z
  .object({
    id: z.int(),
    userId: z.int(),
    status: z.enum(["PAID", "CANCELLED"]),
    items: z.array(z.object({ productId: z.int(), quantity: z.int(), unitPrice: z.int() })),
    totalAmount: z.int(),
    discountAmount: z.int(),
    paidAmount: z.int().openapi({ description: "totalAmount − discountAmount, paid in points." }),
    userCouponId: z.int().nullable(),
    createdAt: timestamp,
    cancelledAt: timestamp.nullable(),
  })
  .openapi("Order");

const placeOrderBody = z.strictObject({
  userId: idField,
  items: z
    .array(
      z.strictObject({
        productId: idField,
        quantity: z.int().min(1).max(limits.maxLineQuantity).openapi({ example: 1 }),
      }),
    )
    .min(1)
    .max(limits.maxOrderLines)
    .refine((items) => new Set(items.map((item) => item.productId)).size === items.length, {
      message: "each product may appear once; put the whole quantity on one line",
    }),
  userCouponId: idField
    .nullish()
    .transform((v) => v ?? null)
    .openapi({ type: "integer", description: "An AVAILABLE coupon the user holds (the `id` from their coupon list)." }),
});

const tags = ["Orders"];
const orderIdParams = z.object({ orderId: idParam("orderId") });

const placeOrder = (limit: MiddlewareHandler<AppEnv>) =>
  createRoute({
    method: "post",
    path: "/api/orders",
    tags,
    summary: "Place and pay an order",
    security: bearerAuth,
    middleware: [requireCaller, limit] as const,
    description:
      "All or nothing: stock is taken, the coupon marked USED and the points paid in one transaction. Prices come from the catalogue. Accepts an Idempotency-Key.",
    request: {
      headers: idempotencyHeaders,
      body: { required: true, content: { "application/json": { schema: placeOrderBody } } },
    },
    responses: {
      201: { description: "Paid", content: { "application/json": { schema: orderSchema } } },
      ...problems(
        ...bodyProblems,
        ...authProblems,
        "USER_NOT_FOUND",
        "PRODUCT_NOT_FOUND",
        "INSUFFICIENT_STOCK",
        "INSUFFICIENT_POINTS",
        "COUPON_NOT_USABLE",
        "IDEMPOTENCY_KEY_REUSED",
        "RATE_LIMITED",
      ),
    },
  });

const getOrder = createRoute({
  method: "get",
  path: "/api/orders/{orderId}",
  tags,
  summary: "Get an order",
  security: bearerAuth,
  middleware: [requireCaller] as const,
  description: "Its owner's and admins' only: another user's order is answered 404, as a missing one.",
  request: { params: orderIdParams },
  responses: {
    200: { description: "The order", content: { "application/json": { schema: orderSchema } } },
    ...problems("VALIDATION_FAILED", "UNAUTHENTICATED", "ORDER_NOT_FOUND"),
  },
});

const listUserOrders = createRoute({
  method: "get",
  path: "/api/users/{userId}/orders",
  tags,
  summary: "List a user's orders, newest first",
  security: bearerAuth,
  middleware: [requireCaller] as const,
  request: { params: userIdParams, query: pageQuery },
  responses: {
    200: {
      description: "A page of orders",
      content: { "application/json": { schema: pageOf(orderSchema, "OrderPage") } },
    },
    ...problems("VALIDATION_FAILED", ...authProblems, "USER_NOT_FOUND"),
  },
});

const cancelOrder = createRoute({
  method: "post",
  path: "/api/orders/{orderId}/cancel",
  tags,
  summary: "Cancel a paid order",
  security: bearerAuth,
  middleware: [requireCaller] as const,
  description:
    "The exact inverse of placing it: stock back, points refunded, the coupon AVAILABLE again. A refund that would take the balance past 100,000,000 is refused (409 BALANCE_LIMIT_EXCEEDED) and the order stays PAID. Another user's order is answered 404, as a missing one.",
  request: { params: orderIdParams },
  responses: {
    200: { description: "Cancelled", content: { "application/json": { schema: orderSchema } } },
    ...problems(
      "VALIDATION_FAILED",
      "UNAUTHENTICATED",
      "ORDER_NOT_FOUND",
      "ORDER_NOT_CANCELLABLE",
      "BALANCE_LIMIT_EXCEEDED",
    ),
  },
});

export function ordersRoutes({ store, clock, rateLimiters }: RouteDeps) {
  return createRouter()
    .openapi(placeOrder(rateLimiters.orders), async (c) => {
      const body = c.req.valid("json");
      actingFor(c, body.userId);
      const idempotency = idempotentRequest(c, c.req.valid("header")["idempotency-key"], body, 201);
      const result = await store.placeOrder({ ...body, now: clock.now(), idempotency });
      if (result.replayed) return replay(c, result);
      if (result.json !== undefined) return sendJson(c, result.json, 201);
      return c.json(result.value, 201);
    })
    .openapi(getOrder, async (c) => c.json(seenBy(c, await store.getOrder(c.req.valid("param").orderId)), 200))
    .openapi(listUserOrders, async (c) => {
      const userId = actingFor(c, c.req.valid("param").userId);
      const { limit, cursor } = c.req.valid("query");
      return c.json(await store.listUserOrders(userId, { limit, after: cursor }), 200);
    })
    .openapi(cancelOrder, async (c) => {
      const { orderId } = c.req.valid("param");
      // An order's owner never changes, so checking it before the cancel transaction is race-free.
      seenBy(c, await store.getOrder(orderId));
      return c.json(await store.cancelOrder({ orderId, now: clock.now() }), 200);
    });
}
