import type { MiddlewareHandler } from "hono";
import { problemOf, problemResponse } from "./problem.ts";

/** The media types the JSON validator reads (hono's own test): `application/json`, `application/*+json`. */
const jsonMediaType = /^application\/([\w.-]+\+)?json$/i;

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Decodes every JSON request body once, as strict UTF-8, before any route sees it. The platform's own
 * decoding (what the validator's `c.req.json()` does) turns a byte that is not UTF-8 into U+FFFD, and
 * the request would go on with, and store, text the client never sent: such a body is refused here,
 * 400 VALIDATION_FAILED. A body that decodes is parsed from that same text and handed to the
 * validator through hono's body cache, so the bytes are neither decoded nor parsed twice.
 */
export const strictUtf8Json: MiddlewareHandler = async (c, next) => {
  if (c.req.raw.body === null) return next();
  const mediaType = c.req.header("content-type")?.split(";")[0]?.trim() ?? "";
  if (!jsonMediaType.test(mediaType)) return next();
  let text: string;
  try {
    text = strictUtf8.decode(await c.req.arrayBuffer());
  } catch {
    return problemResponse(
      c,
      problemOf("VALIDATION_FAILED", "The request body is not valid UTF-8.", [
        { path: "body", message: "must be valid UTF-8" },
      ]),
    );
  }
  const parsed = new Promise((resolve) => resolve(JSON.parse(text)));
  // Malformed JSON is the validator's to refuse, when it awaits this; nothing else may see it unhandled.
  parsed.catch(() => {});
  c.req.bodyCache.json = parsed;
  return next();
};
