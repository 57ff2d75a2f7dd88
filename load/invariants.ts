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
