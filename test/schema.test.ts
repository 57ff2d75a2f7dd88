/**
 * The schema refuses broken states by itself, on SQLite and on PostgreSQL alike: each broken statement
 * below, run with raw SQL behind the service's back, is refused with the same kind of constraint error
 * on both. (SQLite's STRICT typing and its pragmas are tested in sqlite.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openPg } from "../src/store/pg/database.ts";
import { openSqlite } from "../src/store/sqlite/database.ts";
import { TEST_DATABASE_URL } from "./support/server.ts";

type Refusal = "check" | "unique" | "foreign key";
type Dialect = "sqlite" | "pg";

/** The error code each dialect gives for each kind of refusal. */
const CODES: Record<Dialect, Record<Refusal, string>> = {
  sqlite: {
    check: "SQLITE_CONSTRAINT_CHECK",
    unique: "SQLITE_CONSTRAINT_UNIQUE",
    "foreign key": "SQLITE_CONSTRAINT_FOREIGNKEY",
  },
  pg: { check: "23514", unique: "23505", "foreign key": "23503" },
};

/**
 * Users 1 (balance 100) and 2, product 1 (stock 5), a FIXED coupon 1 whose only copy (total 1) user 1
 * holds as user coupon 1. No explicit ids: PostgreSQL's identity columns refuse them, and a fresh
 * database numbers from 1 on both.
 */
const SEED = [
  "INSERT INTO users (name, balance, created_at) VALUES ('a', 100, 0), ('b', 0, 0)",
  "INSERT INTO products (name, price, stock, created_at) VALUES ('p', 10, 5, 0)",
  `INSERT INTO coupons (name, discount_type, discount_value, valid_days, total_quantity, issued_quantity, created_at)
   VALUES ('c', 'FIXED', 100, 30, 1, 1, 0)`,
  "INSERT INTO user_coupons (user_id, coupon_id, status, issued_at, expires_at) VALUES (1, 1, 'AVAILABLE', 0, 9)",
];

const order = (status: string, cancelledAt: string) =>
  `INSERT INTO orders (user_id, status, total_amount, discount_amount, paid_amount, user_coupon_id, created_at, cancelled_at)
   VALUES (1, '${status}', 10, 10, 0, 1, 0, ${cancelledAt})`;

/** [what is broken, statements that must succeed first, the statement that must be refused, how]. */
const BROKEN: [string, string[], string, Refusal][] = [
  ["negative stock", [], "UPDATE products SET stock = -1", "check"],
  ["a negative balance", [], "UPDATE users SET balance = balance - 101 WHERE id = 1", "check"],
  ["a balance past the cap of 100,000,000", [], "UPDATE users SET balance = 100000001 WHERE id = 1", "check"],
  ["a coupon issued past its supply", [], "UPDATE coupons SET issued_quantity = 2", "check"],
  ["a PERCENT discount over 100", [], "UPDATE coupons SET discount_type = 'PERCENT', discount_value = 101", "check"],
  [
    "a second copy of one coupon for one user",
    [],
    "INSERT INTO user_coupons (user_id, coupon_id, status, issued_at, expires_at) VALUES (1, 1, 'AVAILABLE', 0, 9)",
    "unique",
  ],
  [
    "a second PAID order on one user coupon (a cancelled one does not count)",
    [order("CANCELLED", "1"), order("PAID", "NULL")],
    order("PAID", "NULL"),
    "unique",
  ],
  [
    "an order whose paid amount is not total minus discount",
    [],
    "INSERT INTO orders (user_id, status, total_amount, discount_amount, paid_amount, created_at) VALUES (1, 'PAID', 10, 1, 10, 0)",
    "check",
  ],
  [
    "a USE history row without its order",
    [],
    "INSERT INTO point_history (user_id, type, amount, balance_after, order_id, created_at) VALUES (1, 'USE', 5, 0, NULL, 0)",
    "check",
  ],
  [
    "a history row of a user who does not exist",
    [],
    "INSERT INTO point_history (user_id, type, amount, balance_after, order_id, created_at) VALUES (99, 'CHARGE', 5, 5, NULL, 0)",
    "foreign key",
  ],
];

interface Migrated {
  /** Runs the statements in one transaction that is always rolled back: "ok" or the error code of each, up to the first error. */
  attempt(statements: string[]): Promise<string[]>;
  close(): Promise<void>;
}

async function migrated(dialect: Dialect): Promise<Migrated> {
  if (dialect === "sqlite") {
    const dir = mkdtempSync(join(tmpdir(), "flashcart-schema-"));
    const client = openSqlite({ path: join(dir, "x.db"), synchronous: "NORMAL", busyTimeoutMs: 1000 }).$client;
    for (const statement of SEED) client.run(statement);
    return {
      async attempt(statements) {
        const outcomes: string[] = [];
        client.run("BEGIN");
        try {
          for (const statement of statements) {
            client.run(statement);
            outcomes.push("ok");
          }
        } catch (error) {
          outcomes.push((error as { code: string }).code);
        } finally {
          client.run("ROLLBACK");
        }
        return outcomes;
      },
      async close() {
        client.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const schema = `flashcart_schema_${process.pid}_${randomBytes(4).toString("hex")}`;
  const client = (await openPg({ url: TEST_DATABASE_URL, schema, poolMax: 2, statementTimeoutMs: 5000 })).$client;
  for (const statement of SEED) await client.unsafe(statement);
  const rollback = new Error("roll back");
  return {
    async attempt(statements) {
      const outcomes: string[] = [];
      await client
        .begin(async (tx) => {
          try {
            for (const statement of statements) {
              await tx.unsafe(statement);
              outcomes.push("ok");
            }
          } catch (error) {
            outcomes.push((error as { code: string }).code);
          }
          throw rollback;
        })
        .catch((error) => {
          if (error !== rollback) throw error;
        });
      return outcomes;
    },
    async close() {
      await client.unsafe(`DROP SCHEMA "${schema}" CASCADE`);
      await client.end({ timeout: 5 });
    },
  };
}

const dialects: Dialect[] = TEST_DATABASE_URL === "" ? ["sqlite"] : ["sqlite", "pg"];

describe.each(dialects)("the %s schema refuses broken states by itself", (dialect) => {
  let db: Migrated;
  beforeAll(async () => {
    db = await migrated(dialect);
  });
  afterAll(() => db.close());

  test.each(BROKEN)("%s", async (_, setup, broken, refusal) => {
    expect(await db.attempt([...setup, broken])).toEqual([...setup.map(() => "ok"), CODES[dialect][refusal]]);
  });
});
