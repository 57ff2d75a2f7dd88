import { createRoute, z } from "@hono/zod-openapi";
import { envelopeJson } from "../domain/events.ts";
import { toPage } from "../domain/pagination.ts";
import { requireAdmin } from "./auth.ts";
import { claimedCouponSchema, couponSchema } from "./coupons.ts";
import { orderSchema } from "./orders.ts";
import { authProblems, problems } from "./problem.ts";
import { bearerAuth, createRouter, type RouteDeps } from "./router.ts";
import { boundedIntQuery, timestamp } from "./schemas.ts";
import { pointBalanceSchema } from "./users.ts";

/** The feed pages larger than the other lists: a data platform reads it in bulk. */
const MAX_EVENTS_PAGE = 1000;

const envelope = <T extends string, D extends z.ZodType>(type: T, data: D, description: string) =>
  z
    .object({
      id: z.int().positive().openapi({ description: "Increasing in commit order within one database; the cursor." }),
      type: z.literal(type),
      occurredAt: timestamp,
      data: data.openapi({ description }),
    })
    .openapi({ description });

export const eventSchema = z
  .discriminatedUnion("type", [
    envelope("coupon.claimed", claimedCouponSchema, "A user claimed a coupon: the claim's answer."),
    envelope("coupon.sold_out", couponSchema, "A drop's last coupon was claimed: the drop, sold out (once per drop)."),
    envelope("order.paid", orderSchema, "An order was placed and paid: the order as placed."),
    envelope("order.cancelled", orderSchema, "An order was cancelled: the order, CANCELLED."),
    envelope("points.charged", pointBalanceSchema, "Points were charged: the balance after the charge."),
  ])
  .openapi("Event");

const afterQuery = z
  .string()
  .regex(/^(0|[1-9][0-9]{0,15})$/, "must be a non-negative integer")
  .transform(Number)
  .pipe(z.int().max(Number.MAX_SAFE_INTEGER))
  .optional()
  .transform((after) => after ?? 0)
  .openapi({
    param: { name: "after", in: "query" },
    type: "integer",
    minimum: 0,
    default: 0,
    description: "The id of the last event already read (0: from the oldest kept).",
  });

const listEvents = createRoute({
  method: "get",
  path: "/api/events",
  tags: ["Events"],
  summary: "Read the event feed, oldest first (admin)",
  description:
    "Every committed claim, sold-out drop, order, cancel and charge, each once, in id order. Page on with `after` = the id of the last event read.",
  security: bearerAuth,
  middleware: [requireAdmin] as const,
  request: {
    query: z.object({ after: afterQuery, limit: boundedIntQuery("limit", 1, MAX_EVENTS_PAGE, 100) }),
  },
  responses: {
    200: {
      description: "A page of events",
      content: {
        "application/json": {
          schema: z
            .object({
              items: z.array(eventSchema),
              nextCursor: z.string().nullable().openapi({
                description: "The last item's id when more events follow (pass it as `after`); null on the last page.",
              }),
            })
            .openapi("EventPage"),
        },
      },
    },
    ...problems("VALIDATION_FAILED", ...authProblems),
  },
});

export function eventsRoutes({ store }: RouteDeps) {
  return createRouter().openapi(listEvents, async (c) => {
    const { after, limit } = c.req.valid("query");
    const page = toPage(await store.listEvents(after, limit + 1), limit, (event) => event.id);
    // The stored data goes out as it was written, spliced into the envelope: never parsed again.
    const cursor = page.nextCursor === null ? "null" : `"${page.nextCursor}"`;
    const body = `{"items":[${page.items.map(envelopeJson).join(",")}],"nextCursor":${cursor}}`;
    return c.body(body, 200, { "Content-Type": "application/json" }) as never;
  });
}
