import { z } from "@hono/zod-openapi";
import { limits } from "../domain/limits.ts";

/**
 * Schemas shared by several resources. Each one both validates requests and documents them in
 * /openapi.json, so the reference page can never drift from what the server accepts.
 */

/** Path and query integers arrive as text: digits only, no sign, no exponent, no leading zero. */
const positiveIntText = z.string().regex(/^[1-9][0-9]{0,15}$/, "must be a positive integer");

export const idParam = (name: string) =>
  positiveIntText
    .transform(Number)
    .pipe(z.int().max(limits.maxId))
    .openapi({ param: { name, in: "path" }, type: "integer", example: 1 });

export const userIdParams = z.object({ userId: idParam("userId") });

export const idField = z.int().positive().max(limits.maxId).openapi({ example: 1 });

export function boundedIntQuery(name: string, min: number, max: number, fallback: number) {
  return z
    .string()
    .regex(/^[0-9]{1,9}$/, "must be an integer")
    .transform(Number)
    .pipe(z.int().min(min).max(max))
    .optional()
    .transform((value) => value ?? fallback)
    .openapi({
      param: { name, in: "query" },
      type: "integer",
      minimum: min,
      maximum: max,
      default: fallback,
    });
}

export const pageQuery = z.object({
  limit: boundedIntQuery("limit", 1, limits.maxPageSize, limits.defaultPageSize),
  cursor: positiveIntText
    .transform(Number)
    .pipe(z.int().max(limits.maxId))
    .optional()
    .transform((value) => value ?? null)
    .openapi({
      param: { name: "cursor", in: "query" },
      description: "The `nextCursor` of the previous page; omit for the first page.",
      type: "string",
    }),
});

export const nameField = z
  .string()
  .trim()
  .min(1)
  .max(limits.nameLength)
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  .refine((name) => !/[\u0000-\u001f\u007f]/.test(name), "must not contain control characters")
  // A `\uD800` escape with no partner is valid JSON but no character: it would be stored as U+FFFD.
  .refine((name) => name.isWellFormed(), "must not contain a lone surrogate (an escape of half a character)")
  .openapi({ example: "Kim" });

export const timestamp = z.iso.datetime().openapi({ example: "2026-11-24T12:00:00.000Z" });

export function pageOf<T extends z.ZodType>(item: T, name: string) {
  return z
    .object({
      items: z.array(item),
      nextCursor: z
        .string()
        .nullable()
        .openapi({ description: "Pass as `cursor` for the next page; null on the last page." }),
    })
    .openapi(name);
}

export const idempotencyHeaders = z.object({
  "idempotency-key": z
    .string()
    .regex(/^[\x21-\x7E]+$/, "must be printable ASCII without spaces")
    .max(limits.idempotencyKeyMaxLength)
    .optional()
    .openapi({
      param: { in: "header" },
      description:
        "Repeat a request safely: the same key with the same body returns the stored response without doing the work twice (kept at least 24 h); the same key with a different body is answered 422.",
      example: "7c1f7a2e-2f9b-4c59-9a57-9b3c8f0f4d6a",
    }),
});
