/**
 * The database file itself: settings at open, migrations, STRICT typing. The constraints both schemas
 * enforce are tested on SQLite and PostgreSQL alike in schema.test.ts.
 */
import type { Database } from "bun:sqlite";
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openSqlite, type SqliteDb } from "../src/store/sqlite/database.ts";
import { walBudgetPages } from "../src/store/sqlite/wal.ts";

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
  test("sets WAL, synchronous, foreign keys and the WAL budget; no busy timeout once open", () => {
    const client = open();
    expect(pragma(client, "journal_mode")).toBe("wal");
    expect(pragma(client, "synchronous")).toBe(1);
    // The busy timeout (1234 here) bounds opening only: past it, writes wait for a lock held
    // elsewhere in GroupCommit, on a timer, and a busy timeout would stop the event loop instead.
    expect(pragma(client, "busy_timeout")).toBe(0);
    expect(pragma(client, "foreign_keys")).toBe(1);
    const autocheckpoint = pragma(client, "wal_autocheckpoint") as number;
    expect(autocheckpoint).toBeGreaterThanOrEqual(100);
    expect(pragma(client, "journal_size_limit")).toBe(autocheckpoint * (pragma(client, "page_size") as number));
    expect(pragma(open("FULL"), "synchronous")).toBe(2);
  });

  test("the WAL budget: 10,000 pages where there is room, an eighth of the room on a small volume, never under 100", () => {
    const MB = 1024 * 1024;
    expect(walBudgetPages(100_000 * MB, 4096)).toBe(10_000);
    expect(walBudgetPages(320 * MB, 4096)).toBe(10_000);
    expect(walBudgetPages(24 * MB, 4096)).toBe(768);
    expect(walBudgetPages(2 * MB, 4096)).toBe(100);
    expect(walBudgetPages(0, 4096)).toBe(100);
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
      "event_sinks",
      "events",
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

describe("STRICT tables", () => {
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

  test("STRICT refuses values of the wrong type", () => {
    const client = seeded();
    expect(constraintError(client, "UPDATE users SET balance = '12abc' WHERE id = 1")).toBe(
      "SQLITE_CONSTRAINT_DATATYPE",
    );
    expect(constraintError(client, "UPDATE products SET price = 1.5")).toBe("SQLITE_CONSTRAINT_DATATYPE");
  });
});
