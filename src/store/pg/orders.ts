/**
 * An order on PostgreSQL in two round trips and no BEGIN/COMMIT: one read of every fact the order
 * script asks for (user, stored request, prices, held coupon, the next order id), then one call of
 * `place_order` (drizzle/pg/0002_place_order.sql), the script's `commitOrder` move, all or nothing in
 * autocommit. Both statements are prepared by the driver (tagged templates), never built per request.
 */
import type postgres from "postgres";
import type { HeldCoupon } from "../../domain/coupon.ts";
import type { EventTally } from "../../domain/events.ts";
import type { AsyncStorage } from "../../domain/script.ts";
import type {
  IdempotentRequest,
  OrderCommit,
  OrderRefusal,
  OrderStorage,
  PlaceOrder,
  StoredRequest,
} from "../../domain/writes.ts";
import { must } from "../rows.ts";

type OrderMoves = AsyncStorage<OrderStorage>;

interface OrderFacts {
  user_exists: boolean;
  stored: StoredRequest | null;
  prices: (number | null)[];
  held: (Omit<HeldCoupon, "terms"> & HeldCoupon["terms"]) | null;
  order_id: number;
}

/** The SQLSTATE place_order raises a refused guard with; its message names the guard. */
const REFUSED = "FC409";

/**
 * Reads the facts of an order in one round trip and answers the order script's moves from them. The
 * order.paid event place_order writes is counted in `tally` once it has committed.
 */
export async function orderMoves(client: postgres.Sql, command: PlaceOrder, tally: EventTally): Promise<OrderMoves> {
  const productIds = command.items.map((line) => line.productId).sort((a, b) => a - b);
  const [row] = await client<OrderFacts[]>`
    SELECT
      EXISTS (SELECT 1 FROM users WHERE id = ${command.userId}) AS user_exists,
      (SELECT json_build_object('fingerprint', fingerprint, 'statusCode', status_code, 'responseBody', response_body)
         FROM idempotency_keys WHERE user_id = ${command.userId} AND key = ${command.idempotency?.key ?? null}) AS stored,
      (SELECT json_agg(p.price ORDER BY asked.position)
         FROM unnest(${productIds}::int[]) WITH ORDINALITY AS asked(id, position)
         LEFT JOIN products p ON p.id = asked.id) AS prices,
      (SELECT json_build_object(
                'ownerId', uc.user_id, 'status', uc.status, 'expiresAt', uc.expires_at,
                'discountType', c.discount_type, 'discountValue', c.discount_value,
                'maxDiscount', c.max_discount, 'minOrderAmount', c.min_order_amount)
         FROM user_coupons uc JOIN coupons c ON c.id = uc.coupon_id
         WHERE uc.id = ${command.userCouponId}) AS held,
      nextval(pg_get_serial_sequence('orders', 'id'))::int AS order_id`;
  const facts = must(row, "the order's facts");
  let storedRead = false;
  return {
    userExists: async () => facts.user_exists,
    // The stored request as read up front; asked again (after KEY_TAKEN), it is read anew.
    storedRequest: async (userId, request) => {
      if (storedRead) return readStored(client, userId, request);
      storedRead = true;
      return facts.stored;
    },
    pricesOf: async (ids) => ids.map((id) => facts.prices[productIds.indexOf(id)] ?? null),
    heldCoupon: async () => {
      const held = facts.held;
      if (held === null) return null;
      const { ownerId, status, expiresAt, ...terms } = held;
      return { ownerId, status, expiresAt, terms };
    },
    newOrderId: async () => facts.order_id,
    commitOrder: async (commit) => {
      const refusal = await placeOrder(client, commit);
      if (refusal === null && commit.event !== null) tally.add(["order.paid"]);
      return refusal;
    },
  };
}

async function readStored(client: postgres.Sql, userId: number, request: IdempotentRequest) {
  const [stored] = await client<StoredRequest[]>`
    SELECT fingerprint, status_code AS "statusCode", response_body AS "responseBody"
    FROM idempotency_keys WHERE user_id = ${userId} AND key = ${request.key}`;
  return stored ?? null;
}

async function placeOrder(
  client: postgres.Sql,
  { order, lines, response, event }: OrderCommit,
): Promise<OrderRefusal | null> {
  try {
    const [row] = await client<{ refusal: string | null }[]>`
      SELECT place_order(
        ${order.id}::int, ${order.userId}::int,
        ${lines.map((line) => line.productId)}::int[], ${lines.map((line) => line.quantity)}::int[],
        ${lines.map((line) => line.unitPrice)}::bigint[], ${order.userCouponId}::int,
        ${order.totalAmount}::bigint, ${order.discountAmount}::bigint, ${order.paidAmount}::bigint,
        ${order.createdAt}::bigint, ${response?.request.key ?? null}::text,
        ${response?.request.fingerprint ?? null}::text, ${response?.request.statusCode ?? null}::int,
        ${response?.body ?? null}::text, ${event?.data ?? null}::text) AS refusal`;
    return must(row, "place_order's answer").refusal === "KEY_TAKEN" ? { guard: "KEY_TAKEN" } : null;
  } catch (error) {
    const refusal = refusalOf(error, lines);
    if (refusal === null) throw error;
    return refusal;
  }
}

function refusalOf(error: unknown, lines: OrderCommit["lines"]): OrderRefusal | null {
  if (!(error instanceof Error) || (error as { code?: unknown }).code !== REFUSED) return null;
  if (error.message === "COUPON") return { guard: "COUPON" };
  if (error.message === "POINTS") return { guard: "POINTS" };
  const line = lines[Number(error.message.slice("STOCK:".length)) - 1];
  return line === undefined ? null : { guard: "STOCK", productId: line.productId, quantity: line.quantity };
}
