/**
 * The bench's PostgreSQL ceiling (load/pgbench.ts): each strategy's pgbench script is a real claim,
 * as exact as the adapter's (every holding has its slot, never over the supply), and its report is read.
 */
import { describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { claimScript, findPgbench, parseTps, postgresCeiling } from "../load/pgbench.ts";
import { couponStrategies } from "../src/store/pg/coupon-strategies.ts";
import { openPg } from "../src/store/pg/database.ts";
import { TEST_DATABASE_URL } from "./support/server.ts";

test("pgbench's tps line is read, and a report without one is not", () => {
  const report =
    "number of transactions actually processed: 9000\nlatency average = 19.322 ms\ntps = 1035.109278 (without initial connection time)\n";
  expect(parseTps(report)).toBe(1035.109278);
  expect(parseTps("pgbench: error: connection to server failed")).toBeNull();
});

test("every strategy has a script that claims for a random user", () => {
  for (const strategy of couponStrategies) {
    const script = claimScript(strategy);
    expect(script.startsWith("\\set u random(1, :users)")).toBe(true);
    expect(script).toContain(":coupon");
  }
  expect(claimScript("atomic")).toContain("take_coupon(:u, :coupon, 0, 1)");
  expect(claimScript("pessimistic")).toContain("FOR UPDATE");
});

const runnable = TEST_DATABASE_URL !== "" && findPgbench() !== null;
if (!runnable) console.log("pgbench.test.ts: pgbench runs not run: they need TEST_DATABASE_URL and pgbench.");

describe.each(runnable ? couponStrategies.map((s) => [s]) : [])("pgbench, %s", (strategy) => {
  test("a second of claims by 300 users on 100 coupons: tps measured, supply exact, every holding counted", async () => {
    const schema = `flashcart_pgbench_${process.pid}_${randomBytes(4).toString("hex")}`;
    const db = await openPg({ url: TEST_DATABASE_URL, schema, poolMax: 1, statementTimeoutMs: 10_000 });
    await db.$client.end();
    const sql = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {}, connection: { search_path: schema } });
    try {
      await sql`INSERT INTO users (name, balance, created_at) SELECT 'u' || g, 0, 0 FROM generate_series(1, 300) g`;
      const ceiling = await postgresCeiling({
        url: TEST_DATABASE_URL,
        schema,
        sql,
        of: { claim: strategy, supply: 100 },
        users: 300,
        clients: 4,
        seconds: 1,
        synchronousCommit: "off",
      });
      expect("tps" in ceiling && ceiling.tps > 0).toBe(true);
      const [drop] = await sql<{ issued: number; total: number; held: number; distinct: number }[]>`
        SELECT c.issued_quantity AS issued, c.total_quantity AS total,
               (SELECT count(*)::int FROM user_coupons u WHERE u.coupon_id = c.id) AS held,
               (SELECT count(DISTINCT user_id)::int FROM user_coupons u WHERE u.coupon_id = c.id) AS distinct
        FROM coupons c WHERE c.name = 'pgbench'`;
      expect(drop).toBeDefined();
      expect(drop?.issued).toBe(drop?.held);
      expect(drop?.held).toBe(drop?.distinct);
      expect(drop?.issued).toBeLessThanOrEqual(100);
      expect(drop?.issued).toBeGreaterThan(0);
    } finally {
      await sql.unsafe(`DROP SCHEMA "${schema}" CASCADE`);
      await sql.end({ timeout: 5 });
    }
  });
});

describe.each(runnable ? [["order"]] : [])("pgbench, %s", () => {
  test("a second of orders by 300 users: tps measured, each a whole paid order (stock, points, rows agree)", async () => {
    const schema = `flashcart_pgbench_${process.pid}_${randomBytes(4).toString("hex")}`;
    const db = await openPg({ url: TEST_DATABASE_URL, schema, poolMax: 1, statementTimeoutMs: 10_000 });
    await db.$client.end();
    const sql = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {}, connection: { search_path: schema } });
    try {
      await sql`INSERT INTO users (name, balance, created_at) SELECT 'u' || g, 1000000, 0 FROM generate_series(1, 300) g`;
      await sql`INSERT INTO products (name, price, stock, created_at) SELECT 'p' || g, 100, 1000000, 0 FROM generate_series(1, 5) g`;
      const ceiling = await postgresCeiling({
        url: TEST_DATABASE_URL,
        schema,
        sql,
        of: { order: { products: 5, price: 100 } },
        users: 300,
        clients: 4,
        seconds: 1,
        synchronousCommit: "off",
      });
      expect("tps" in ceiling && ceiling.tps > 0).toBe(true);
      const [totals] = await sql<{ orders: number; lines: number; sold: number; spent: number; history: number }[]>`
        SELECT (SELECT count(*)::int FROM orders WHERE status = 'PAID' AND paid_amount = 100) AS orders,
               (SELECT count(*)::int FROM order_items WHERE quantity = 1 AND unit_price = 100) AS lines,
               (SELECT (5 * 1000000 - sum(stock))::int FROM products) AS sold,
               (SELECT (300 * 1000000 - sum(balance))::int FROM users) AS spent,
               (SELECT count(*)::int FROM point_history WHERE type = 'USE' AND amount = 100) AS history`;
      expect(totals?.orders).toBeGreaterThan(0);
      expect(totals).toEqual({
        orders: totals?.orders as number,
        lines: totals?.orders as number,
        sold: totals?.orders as number,
        spent: 100 * (totals?.orders as number),
        history: totals?.orders as number,
      });
    } finally {
      await sql.unsafe(`DROP SCHEMA "${schema}" CASCADE`);
      await sql.end({ timeout: 5 });
    }
  });
});
