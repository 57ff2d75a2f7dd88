import type { Page } from "./model.ts";

/**
 * Keyset pagination: stores fetch `limit + 1` rows after the cursor; the extra row only says whether
 * there is a next page. The cursor is the id of the last item shown (opaque to clients).
 */
export function toPage<T>(rows: T[], limit: number, idOf: (row: T) => number): Page<T> {
  if (rows.length <= limit) return { items: rows, nextCursor: null };
  const items = rows.slice(0, limit);
  const last = items[items.length - 1] as T;
  return { items, nextCursor: String(idOf(last)) };
}
