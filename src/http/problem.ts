import { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { type ErrorCode, errorCodes } from "../domain/errors.ts";

/** RFC 9457 problem details, plus our stable `code`. */
export const problemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.int(),
    detail: z.string(),
    code: z.enum(errorCodes),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  })
  .openapi("Problem");

export type Problem = z.infer<typeof problemSchema>;

const catalog: Record<ErrorCode, { status: ContentfulStatusCode; title: string }> = {
  VALIDATION_FAILED: { status: 400, title: "The request is not valid" },
  PAYLOAD_TOO_LARGE: { status: 413, title: "The request body is too large" },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, title: "The request body must be application/json" },
  UNAUTHENTICATED: { status: 401, title: "Authentication required" },
  FORBIDDEN: { status: 403, title: "Not allowed for this caller" },
  RATE_LIMITED: { status: 429, title: "Too many requests" },
  NOT_FOUND: { status: 404, title: "No such resource" },
  USER_NOT_FOUND: { status: 404, title: "User not found" },
  PRODUCT_NOT_FOUND: { status: 404, title: "Product not found" },
  COUPON_NOT_FOUND: { status: 404, title: "Coupon not found" },
  ORDER_NOT_FOUND: { status: 404, title: "Order not found" },
  COUPON_ALREADY_ISSUED: { status: 409, title: "Coupon already issued to this user" },
  COUPON_SOLD_OUT: { status: 409, title: "Coupon sold out" },
  COUPON_NOT_ACTIVE: { status: 409, title: "Coupon is not being issued now" },
  INSUFFICIENT_STOCK: { status: 409, title: "Not enough stock" },
  INSUFFICIENT_POINTS: { status: 409, title: "Not enough points" },
  COUPON_NOT_USABLE: { status: 409, title: "Coupon cannot be used for this order" },
  ORDER_NOT_CANCELLABLE: { status: 409, title: "Order cannot be cancelled" },
  BALANCE_LIMIT_EXCEEDED: { status: 409, title: "Balance limit exceeded" },
  IDEMPOTENCY_KEY_REUSED: { status: 422, title: "Idempotency key reused with a different request" },
  SERVICE_UNAVAILABLE: { status: 503, title: "A dependency is unavailable" },
  STORAGE_FULL: { status: 507, title: "Storage is full" },
  INTERNAL_ERROR: { status: 500, title: "Internal server error" },
};

export function statusOf(code: ErrorCode): ContentfulStatusCode {
  return catalog[code].status;
}

export function problemOf(code: ErrorCode, detail: string, errors?: Problem["errors"]): Problem {
  const { status, title } = catalog[code];
  const problem: Problem = {
    type: `urn:flashcart:problem:${code.toLowerCase().replaceAll("_", "-")}`,
    title,
    status,
    detail,
    code,
  };
  if (errors !== undefined) problem.errors = errors;
  return problem;
}

export function problemResponse(c: Context, problem: Problem, headers?: Record<string, string>): Response {
  return c.body(JSON.stringify(problem), problem.status as ContentfulStatusCode, {
    ...headers,
    "Content-Type": "application/problem+json",
  });
}

const problemContent = { "application/problem+json": { schema: problemSchema } };

/**
 * Documents a route's error responses (for createRoute) from the codes it can answer with. Each code's
 * status comes from the catalog above, which also builds the responses, so a code cannot be documented
 * under a status it is never sent with. Codes sharing a status share one response that lists them.
 */
export function problems(...codes: ErrorCode[]) {
  const codesByStatus = new Map<number, Set<ErrorCode>>();
  for (const code of codes) {
    const status = statusOf(code);
    codesByStatus.set(status, (codesByStatus.get(status) ?? new Set()).add(code));
  }
  const out: Record<number, { description: string; content: typeof problemContent }> = {};
  for (const [status, shared] of codesByStatus) {
    out[status] = { description: [...shared].join(", "), content: problemContent };
  }
  return out;
}

/** The answers every route that needs a token can give besides its own. */
export const authProblems = ["UNAUTHENTICATED", "FORBIDDEN"] as const satisfies readonly ErrorCode[];

/** The answers every route that reads a JSON body can give: not valid, too large, not JSON. */
export const bodyProblems = [
  "VALIDATION_FAILED",
  "PAYLOAD_TOO_LARGE",
  "UNSUPPORTED_MEDIA_TYPE",
] as const satisfies readonly ErrorCode[];
