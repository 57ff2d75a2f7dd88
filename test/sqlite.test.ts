/** The database file itself: settings at open, and the invariants the schema enforces on its own. */
import type { Database } from "bun:sqlite";
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openSqlite, type SqliteDb } from "../src/store/sqlite/database.ts";

/** Every migration drizzle-kit has written, per its journal. */
const MIGRATIONS = (
  JSON.parse(readFileSync(join(import.meta.dir, "../drizzle/sqlite/meta/_journal.json"), "utf8")) as {
    entries: unknown[];
  }
).entries.length;

const opened: { db: SqliteDb; dir: string }[] = [];

function open(synchronous: "NORMAL" | "FULL" = "NORMAL"): Database {
  const dir = mkdtempSync(join(tmpdir(), "flashcart-sqlite-"));
  const db = openSqlite({ path: join(dir, "x.db"), synchronous, busyTimeoutMs: 1234 });
  opened.push({ db, dir });
  return db.$client;
}

afterEach(() => {
  for (const { db, dir } of opened.splice(0)) {
    db.$client.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

const pragma = (client: Database, name: string) => Object.values(client.query(`PRAGMA ${name}`).get() as object)[0];

function constraintError(client: Database, sql: string): string {
  try {
    client.run(sql);
  } catch (error) {
    return (error as { code: string }).code;
  }
  return "no error";
}

describe("openSqlite", () => {
  test("sets WAL, synchronous, busy_timeout and foreign keys", () => {
    const client = open();
    expect(pragma(client, "journal_mode")).toBe("wal");
    expect(pragma(client, "synchronous")).toBe(1);
    expect(pragma(client, "busy_timeout")).toBe(1234);
    expect(pragma(client, "foreign_keys")).toBe(1);
    expect(pragma(client, "wal_autocheckpoint")).toBe(10_000);
    expect(pragma(open("FULL"), "synchronous")).toBe(2);
  });

  test("every table is STRICT and the migration is recorded once", () => {
    const client = open();
    const tables = client
      .query(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '__drizzle%'",
      )
      .all() as { name: string; sql: string }[];
    expect(tables.map((t) => t.name).sort()).toEqual([
      "coupons",
      "idempotency_keys",
      "order_items",
      "orders",
      "point_history",
      "products",
      "user_coupons",
      "users",
    ]);
    for (const table of tables) expect(table.sql.trimEnd().endsWith("STRICT")).toBe(true);
    expect(client.query("SELECT count(*) AS n FROM __drizzle_migrations").get()).toEqual({ n: MIGRATIONS });
  });

  test("reopening a migrated file applies nothing twice", () => {
    const dir = mkdtempSync(join(tmpdir(), "flashcart-sqlite-"));
    const path = join(dir, "x.db");
    for (let i = 0; i < 2; i++) {
      const db = openSqlite({ path, synchronous: "NORMAL", busyTimeoutMs: 10 });
      expect(db.$client.query("SELECT count(*) AS n FROM __drizzle_migrations").get()).toEqual({ n: MIGRATIONS });
      db.$client.close();
    }
    rmSync(dir, { recursive: true, force: true });
  });
});

describe("the schema refuses broken states by itself", () => {
  function seeded(): Database {
    const client = open();
    client.run("INSERT INTO users (id, name, balance, created_at) VALUES (1, 'a', 100, 0), (2, 'b', 0, 0)");
    client.run("INSERT INTO products (id, name, price, stock, created_at) VALUES (1, 'p', 10, 5, 0)");
    client.run(`INSERT INTO coupons (id, name, discount_type, discount_value, valid_days, total_quantity, issued_quantity, created_at)
                VALUES (1, 'c', 'FIXED', 100, 30, 1, 1, 0)`);
    client.run(
      "INSERT INTO user_coupons (id, user_id, coupon_id, status, issued_at, expires_at) VALUES (1, 1, 1, 'AVAILABLE', 0, 9)",
    );
    return client;
  }

  test("no negative stock or balance, no coupon past its supply", () => {
    const client = seeded();
    expect(constraintError(client, "UPDATE products SET stock = -1")).toBe("SQLITE_CONSTRAINT_CHECK");
    expect(constraintError(client, "UPDATE users SET balance = balance - 101 WHERE id = 1")).toBe(
      "SQLITE_CONSTRAINT_CHECK",
    );
    expect(constraintError(client, "UPDATE coupons SET issued_quantity = 2")).toBe("SQLITE_CONSTRAINT_CHECK");
    expect(constraintError(client, "UPDATE coupons SET discount_type = 'PERCENT', discount_value = 101")).toBe(
      "SQLITE_CONSTRAINT_CHECK",
    );
  });

  test("one coupon per user, and one paid order per user coupon", () => {
    const client = seeded();
    expect(
      constraintError(
        client,
        "INSERT INTO user_coupons (user_id, coupon_id, status, issued_at, expires_at) VALUES (1, 1, 'AVAILABLE', 0, 9)",
      ),
    ).toBe("SQLITE_CONSTRAINT_UNIQUE");
    const order = (id: number, status: string, cancelledAt: string) =>
      `INSERT INTO orders (id, user_id, status, total_amount, discount_amount, paid_amount, user_coupon_id, created_at, cancelled_at)
       VALUES (${id}, 1, '${status}', 10, 10, 0, 1, 0, ${cancelledAt})`;
    expect(constraintError(client, order(1, "CANCELLED", "1"))).toBe("no error");
    expect(constraintError(client, order(2, "PAID", "NULL"))).toBe("no error");
    expect(constraintError(client, order(3, "PAID", "NULL"))).toBe("SQLITE_CONSTRAINT_UNIQUE");
  });

  test("amounts add up and history rows match their kind", () => {
    const client = seeded();
    expect(
      constraintError(
        client,
        "INSERT INTO orders (user_id, status, total_amount, discount_amount, paid_amount, created_at) VALUES (1, 'PAID', 10, 1, 10, 0)",
      ),
    ).toBe("SQLITE_CONSTRAINT_CHECK");
    expect(
      constraintError(
        client,
        "INSERT INTO point_history (user_id, type, amount, balance_after, order_id, created_at) VALUES (1, 'USE', 5, 0, NULL, 0)",
      ),
    ).toBe("SQLITE_CONSTRAINT_CHECK");
    expect(
      constraintError(
        client,
        "INSERT INTO point_history (user_id, type, amount, balance_after, order_id, created_at) VALUES (99, 'CHARGE', 5, 5, NULL, 0)",
      ),
    ).toBe("SQLITE_CONSTRAINT_FOREIGNKEY");
  });

  test("STRICT refuses values of the wrong type", () => {
    const client = seeded();
    expect(constraintError(client, "UPDATE users SET balance = '12abc' WHERE id = 1")).toBe(
      "SQLITE_CONSTRAINT_DATATYPE",
    );
    expect(constraintError(client, "UPDATE products SET price = 1.5")).toBe("SQLITE_CONSTRAINT_DATATYPE");
  });
});
