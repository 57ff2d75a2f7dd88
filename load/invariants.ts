import { Database } from "bun:sqlite";
import { type RowSource, rowReader } from "./rows.ts";

/**
 * Reads the database and lists every broken invariant (empty when all hold). Used by the bench after
 * each scenario, and by the tests after races and after every step of the property test.
 */
export async function brokenInvariants(
  source: RowSource,
  initialStock: Map<number, number> = new Map(),
): Promise<string[]> {
  const broken: string[] = [];
  const query = rowReader(source);
  const rows = async <T>(sql: string) => (await query(sql)) as T[];

  // On PostgreSQL a sharded drop keeps what is left in coupon_shards (COUPON_STRATEGY=sharded).
  const issued =
    source instanceof Database
      ? "c.issued_quantity"
      : "c.issued_quantity - coalesce((SELECT sum(s.total - s.issued) FROM coupon_shards s WHERE s.coupon_id = c.id), 0)";
  for (const r of await rows<{ id: number; issued: number; total: number; held: number }>(
    `SELECT c.id, ${issued} AS issued, c.total_quantity AS total,
            (SELECT count(*) FROM user_coupons uc WHERE uc.coupon_id = c.id) AS held
       FROM coupons c`,
  )) {
    if (r.issued !== r.held) broken.push(`coupon ${r.id}: counter ${r.issued} != ${r.held} rows`);
    if (r.issued > r.total) broken.push(`coupon ${r.id}: ${r.issued} issued > ${r.total} total`);
  }
  for (const r of await rows<{ user_id: number; coupon_id: number; n: number }>(
    "SELECT user_id, coupon_id, count(*) AS n FROM user_coupons GROUP BY user_id, coupon_id HAVING count(*) > 1",
  )) {
    broken.push(`user ${r.user_id} holds coupon ${r.coupon_id} ${r.n} times`);
  }
  for (const r of await rows<{ id: number; balance: number; history: number }>(
    `SELECT u.id, u.balance,
            coalesce((SELECT sum(CASE type WHEN 'USE' THEN -amount ELSE amount END)
                        FROM point_history h WHERE h.user_id = u.id), 0) AS history
       FROM users u`,
  )) {
    if (r.balance < 0) broken.push(`user ${r.id}: negative balance ${r.balance}`);
    if (r.balance !== r.history) broken.push(`user ${r.id}: balance ${r.balance} != history sum ${r.history}`);
  }
  for (const r of await rows<{ id: number; stock: number; sold: number }>(
    `SELECT p.id, p.stock,
            coalesce((SELECT sum(oi.quantity) FROM order_items oi JOIN orders o ON o.id = oi.order_id
                       WHERE oi.product_id = p.id AND o.status = 'PAID'), 0) AS sold
       FROM products p`,
  )) {
    if (r.stock < 0) broken.push(`product ${r.id}: negative stock ${r.stock}`);
    const initial = initialStock.get(r.id);
    if (initial !== undefined && r.stock + r.sold !== initial) {
      broken.push(`product ${r.id}: stock ${r.stock} + sold ${r.sold} != initial ${initial}`);
    }
  }
  for (const r of await rows<{ user_coupon_id: number; n: number }>(
    "SELECT user_coupon_id, count(*) AS n FROM orders WHERE status = 'PAID' AND user_coupon_id IS NOT NULL GROUP BY user_coupon_id HAVING count(*) > 1",
  )) {
    broken.push(`user coupon ${r.user_coupon_id} pays for ${r.n} orders`);
  }
  for (const r of await rows<{ id: number }>(
    `SELECT uc.id FROM user_coupons uc
      WHERE (uc.status = 'USED') != EXISTS (SELECT 1 FROM orders o WHERE o.user_coupon_id = uc.id AND o.status = 'PAID')`,
  )) {
    broken.push(`user coupon ${r.id}: USED status disagrees with its orders`);
  }
  return broken;
}

/**
 * The outbox against the effects (with EVENTS=on): every committed effect has exactly one event and
 * every event one effect. A user coupon ↔ one coupon.claimed with its id; an order (paid, and perhaps
 * cancelled since) ↔ one order.paid; a cancelled order ↔ one order.cancelled; a sold-out drop ↔ one
 * coupon.sold_out (and no other drop has one); a CHARGE history row ↔ one points.charged with that user
 * and balance. Empty when all hold. (Retention must not have deleted events yet.)
 */
export async function brokenEventInvariants(source: RowSource): Promise<string[]> {
  const query = rowReader(source);
  const sqlite = source instanceof Database;
  const field = (name: string) => (sqlite ? `json_extract(data, '$.${name}')` : `(data::json->>'${name}')::bigint`);
  const idsOf = async (sql: string) => (await query(sql)).map((row) => `${row.k}`);
  const eventKeys = (type: string, key: string) => idsOf(`SELECT ${key} AS k FROM events WHERE type = '${type}'`);
  const issued = sqlite
    ? "c.issued_quantity"
    : "c.issued_quantity - coalesce((SELECT sum(s.total - s.issued) FROM coupon_shards s WHERE s.coupon_id = c.id), 0)";
  const pairs: [string, Promise<string[]>, Promise<string[]>][] = [
    ["user coupon", idsOf("SELECT id AS k FROM user_coupons"), eventKeys("coupon.claimed", field("id"))],
    ["order", idsOf("SELECT id AS k FROM orders"), eventKeys("order.paid", field("id"))],
    [
      "cancelled order",
      idsOf("SELECT id AS k FROM orders WHERE status = 'CANCELLED'"),
      eventKeys("order.cancelled", field("id")),
    ],
    [
      "sold-out drop",
      idsOf(`SELECT c.id AS k FROM coupons c WHERE ${issued} = c.total_quantity`),
      eventKeys("coupon.sold_out", field("id")),
    ],
    [
      "charge",
      idsOf("SELECT user_id || ':' || balance_after AS k FROM point_history WHERE type = 'CHARGE'"),
      eventKeys("points.charged", `${field("userId")} || ':' || ${field("balance")}`),
    ],
  ];
  const broken: string[] = [];
  for (const [what, effectsRead, eventsRead] of pairs) {
    const counts = new Map<string, number>();
    for (const key of await effectsRead) counts.set(key, (counts.get(key) ?? 0) + 1);
    for (const key of await eventsRead) counts.set(key, (counts.get(key) ?? 0) - 1);
    for (const [key, difference] of counts) {
      if (difference > 0) broken.push(`${what} ${key}: ${difference} effect(s) without an event`);
      if (difference < 0) broken.push(`${what} ${key}: ${-difference} event(s) too many`);
    }
  }
  return broken;
}
