import { createRoute, type RouteHandler, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { couponDefinitionProblems } from "../domain/coupon.ts";
import { limits } from "../domain/limits.ts";
import { type AppEnv, actingFor, requireAdmin, requireCaller } from "./auth.ts";
import { authProblems, bodyProblems, problems } from "./problem.ts";
import { bearerAuth, createRouter, type RouteDeps } from "./router.ts";
import { idField, idParam, nameField, timestamp, userIdParams } from "./schemas.ts";

// The API's field names say "issue" where the action is a claim; they are a frozen contract.
const claimsOpen = { description: "Claims open at this instant (inclusive); null: as soon as the coupon exists." };
const claimsClose = { description: "Claims close at this instant (exclusive); null: until sold out." };

export const couponSchema = z
  .object({
    id: z.int(),
    name: z.string(),
    discountType: z.enum(["FIXED", "PERCENT"]),
    discountValue: z.int(),
    maxDiscount: z.int().nullable(),
    minOrderAmount: z.int(),
    issueStartsAt: timestamp.nullable().openapi(claimsOpen),
    issueEndsAt: timestamp.nullable().openapi(claimsClose),
    validDays: z.int(),
    totalQuantity: z.int(),
    issuedQuantity: z.int().openapi({ description: "How many have been claimed." }),
    remainingQuantity: z.int(),
    createdAt: timestamp,
  })
  .openapi("Coupon");

const userCouponStatus = z.enum(["AVAILABLE", "USED", "EXPIRED"]);

export const claimedCouponSchema = z
  .object({
    id: z.int().openapi({ description: "The user coupon id, to pass as `userCouponId` when ordering." }),
    userId: z.int(),
    couponId: z.int(),
    status: userCouponStatus,
    issuedAt: timestamp.openapi({ description: "When the user claimed it." }),
    expiresAt: timestamp,
    usedAt: timestamp.nullable(),
  })
  .openapi("ClaimedCoupon");

const userCouponSchema = claimedCouponSchema.extend({ coupon: couponSchema }).openapi("UserCoupon");

const isoInput = z.iso
  .datetime({ offset: true })
  .transform((text) => Date.parse(text))
  .nullish()
  .transform((ms) => ms ?? null)
  .openapi({ type: "string", format: "date-time", example: "2026-12-01T10:00:00+09:00" });

const newCouponBody = z
  .strictObject({
    name: nameField.openapi({ example: "Black Friday 10%" }),
    discountType: z.enum(["FIXED", "PERCENT"]),
    discountValue: z
      .int()
      .min(1)
      .max(limits.maxFixedDiscount)
      .openapi({
        description: `Won off (FIXED, up to ${limits.maxFixedDiscount}) or percent off (PERCENT, 1..100).`,
        example: 10,
      }),
    totalQuantity: z.int().min(1).max(limits.maxCouponQuantity).openapi({ example: 100 }),
    maxDiscount: z
      .int()
      .min(1)
      .max(limits.maxFixedDiscount)
      .nullish()
      .transform((v) => v ?? null)
      .openapi({ type: "integer", description: "Cap on a PERCENT discount, in won." }),
    minOrderAmount: z.int().min(0).max(limits.maxMinOrderAmount).default(0),
    issueStartsAt: isoInput.openapi(claimsOpen),
    issueEndsAt: isoInput.openapi(claimsClose),
    validDays: z.int().min(1).max(limits.maxValidDays).default(limits.defaultValidDays).openapi({
      description: "How long a claimed coupon can be used, counted from its claim.",
    }),
  })
  .superRefine((input, ctx) => {
    for (const problem of couponDefinitionProblems(input)) {
      ctx.addIssue({ code: "custom", path: [problem.path], message: problem.message });
    }
  });

const claimBody = z.strictObject({ couponId: idField });

const tags = ["Coupons"];

const createCoupon = createRoute({
  method: "post",
  path: "/api/coupons",
  tags,
  summary: "Create a coupon drop (admin)",
  security: bearerAuth,
  middleware: [requireAdmin] as const,
  request: { body: { required: true, content: { "application/json": { schema: newCouponBody } } } },
  responses: {
    201: { description: "Created", content: { "application/json": { schema: couponSchema } } },
    ...problems(...bodyProblems, ...authProblems),
  },
});

const getCoupon = createRoute({
  method: "get",
  path: "/api/coupons/{couponId}",
  tags,
  summary: "Get a coupon and how many are left",
  request: { params: z.object({ couponId: idParam("couponId") }) },
  responses: {
    200: { description: "The coupon", content: { "application/json": { schema: couponSchema } } },
    ...problems("VALIDATION_FAILED", "COUPON_NOT_FOUND"),
  },
});

const claimResponses = {
  201: { description: "Claimed", content: { "application/json": { schema: claimedCouponSchema } } },
  ...problems(
    ...bodyProblems,
    ...authProblems,
    "USER_NOT_FOUND",
    "COUPON_NOT_FOUND",
    "COUPON_ALREADY_ISSUED",
    "COUPON_SOLD_OUT",
    "COUPON_NOT_ACTIVE",
    "RATE_LIMITED",
  ),
};

const claimDescription =
  "First come, first served: exactly `totalQuantity` claims succeed however many arrive at once, and a user claims a coupon at most once.";

const claimCoupon = (limit: MiddlewareHandler<AppEnv>) =>
  createRoute({
    method: "post",
    path: "/api/users/{userId}/coupons",
    tags,
    summary: "Claim a coupon for a user",
    description: claimDescription,
    security: bearerAuth,
    middleware: [requireCaller, limit] as const,
    request: { params: userIdParams, body: { required: true, content: { "application/json": { schema: claimBody } } } },
    responses: claimResponses,
  });

/** The original report's endpoint, kept so its load scripts run unchanged. */
const claimCouponLegacy = (limit: MiddlewareHandler<AppEnv>) =>
  createRoute({
    method: "post",
    path: "/api/coupons/{userId}",
    tags,
    summary: "Claim a coupon for a user (the report's path)",
    description: `${claimDescription} Same as POST /api/users/{userId}/coupons.`,
    security: bearerAuth,
    middleware: [requireCaller, limit] as const,
    request: { params: userIdParams, body: { required: true, content: { "application/json": { schema: claimBody } } } },
    responses: claimResponses,
  });

const listUserCoupons = createRoute({
  method: "get",
  path: "/api/users/{userId}/coupons",
  tags,
  summary: "List a user's coupons",
  security: bearerAuth,
  middleware: [requireCaller] as const,
  request: {
    params: userIdParams,
    query: z.object({ status: userCouponStatus.optional().openapi({ param: { name: "status", in: "query" } }) }),
  },
  responses: {
    200: {
      description: "The user's coupons, oldest first",
      content: { "application/json": { schema: z.object({ items: z.array(userCouponSchema) }) } },
    },
    ...problems("VALIDATION_FAILED", ...authProblems, "USER_NOT_FOUND"),
  },
});

export function couponsRoutes({ store, clock, rateLimiters }: RouteDeps) {
  /** Both claim paths: the caller must act for the user, then the store decides first come, first served. */
  const claim: RouteHandler<ReturnType<typeof claimCoupon>, AppEnv> = async (c) => {
    const userId = actingFor(c, c.req.valid("param").userId);
    return c.json(await store.claimCoupon({ userId, couponId: c.req.valid("json").couponId, now: clock.now() }), 201);
  };
  return createRouter()
    .openapi(createCoupon, async (c) => c.json(await store.createCoupon(c.req.valid("json"), clock.now()), 201))
    .openapi(getCoupon, async (c) => c.json(await store.getCoupon(c.req.valid("param").couponId), 200))
    .openapi(claimCoupon(rateLimiters.couponClaims), claim)
    .openapi(claimCouponLegacy(rateLimiters.couponClaims), claim)
    .openapi(listUserCoupons, async (c) => {
      const userId = actingFor(c, c.req.valid("param").userId);
      const status = c.req.valid("query").status ?? null;
      return c.json({ items: await store.listUserCoupons({ userId, status, now: clock.now() }) }, 200);
    });
}
