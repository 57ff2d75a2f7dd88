/**
 * flashcart's migration runner keeps drizzle's bookkeeping: a database migrated by drizzle's own
 * migrator (as every flashcart build before the runner did) opens with nothing applied twice, and
 * processes starting together on a new database migrate it once.
 */
import { Database } from "bun:sqlite";
import { afterAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { drizzle as drizzleSqlite } from "drizzle-orm/bun-sqlite";
import { migrate as drizzleSqliteMigrate } from "drizzle-orm/bun-sqlite/migrator";
import { drizzle as drizzlePg } from "drizzle-orm/postgres-js";
import { migrate as drizzlePgMigrate } from "drizzle-orm/postgres-js/migrator";
import postgres from "postgres";
import { pgMigrations, sqliteMigrations } from "../src/store/migrations.generated.ts";
import { openPg } from "../src/store/pg/database.ts";
import { openSqlite } from "../src/store/sqlite/database.ts";

const migrationsFolder = (dialect: "sqlite" | "pg") => resolve(import.meta.dir, "../drizzle", dialect);
const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? "";

test("SQLite: a database migrated by drizzle's migrator opens with nothing applied again", () => {
  const dir = mkdtempSync(join(tmpdir(), "flashcart-migrations-"));
  try {
    const path = join(dir, "flashcart.db");
    const client = new Database(path);
    drizzleSqliteMigrate(drizzleSqlite({ client }), { migrationsFolder: migrationsFolder("sqlite") });
    const recorded = client.query("SELECT rowid, hash, created_at FROM __drizzle_migrations ORDER BY rowid").all();
    client.close();
    expect(recorded).toHaveLength(sqliteMigrations.length);

    const db = openSqlite({ path, synchronous: "NORMAL", busyTimeoutMs: 5000 });
    expect(db.$client.query("SELECT rowid, hash, created_at FROM __drizzle_migrations ORDER BY rowid").all()).toEqual(
      recorded,
    );
    db.$client.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A new database file as the build before migration `tag` left it: every migration before it applied. */
function migratedUpTo(tag: string): { dir: string; path: string; client: Database; applied: number } {
  const applied = sqliteMigrations.findIndex((m) => m.tag === tag);
  if (applied < 0) throw new Error(`no migration ${tag}`);
  const dir = mkdtempSync(join(tmpdir(), "flashcart-migrations-"));
  const path = join(dir, "flashcart.db");
  const client = new Database(path);
  client.run("PRAGMA foreign_keys = ON");
  client.run('CREATE TABLE "__drizzle_migrations" (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at numeric)');
  for (const migration of sqliteMigrations.slice(0, applied)) {
    for (const statement of migration.sql.split("--> statement-breakpoint")) client.run(statement);
    client.run('INSERT INTO "__drizzle_migrations" (hash, created_at) VALUES (?, ?)', ["earlier", migration.when]);
  }
  return { dir, path, client, applied };
}

describe("SQLite: the balance cap's rebuild of users (0002) on a database with data", () => {
  const capMigration = sqliteMigrations.findIndex((m) => m.tag === "0002_users_balance_cap");

  /** A database as the build before the cap left it (migrations up to 0001), holding a user with an order. */
  function before(balance: number): { dir: string; path: string } {
    const { dir, path, client } = migratedUpTo("0002_users_balance_cap");
    client.run(`INSERT INTO users (id, name, balance, created_at) VALUES (1, 'a', ${balance}, 0), (2, 'b', 7, 0)`);
    client.run("INSERT INTO products (id, name, price, stock, created_at) VALUES (1, 'p', 10, 5, 0)");
    client.run(
      "INSERT INTO orders (id, user_id, status, total_amount, discount_amount, paid_amount, created_at) VALUES (1, 1, 'PAID', 10, 0, 10, 0)",
    );
    client.run("INSERT INTO order_items (order_id, product_id, quantity, unit_price) VALUES (1, 1, 1, 10)");
    client.run(
      "INSERT INTO point_history (user_id, type, amount, balance_after, order_id, created_at) VALUES (1, 'USE', 10, 0, 1, 0)",
    );
    client.close();
    return { dir, path };
  }

  test("keeps every row and every foreign key, and refuses a balance past the cap from then on", () => {
    const { dir, path } = before(100_000_000);
    try {
      const db = openSqlite({ path, synchronous: "NORMAL", busyTimeoutMs: 5000 }).$client;
      expect(db.query("SELECT id, name, balance FROM users ORDER BY id").all()).toEqual([
        { id: 1, name: "a", balance: 100_000_000 },
        { id: 2, name: "b", balance: 7 },
      ]);
      expect(db.query("SELECT count(*) AS n FROM orders JOIN point_history USING (user_id)").get()).toEqual({ n: 1 });
      expect(db.query("PRAGMA foreign_key_check").all()).toEqual([]);
      expect(db.query("PRAGMA foreign_keys").get()).toEqual({ foreign_keys: 1 });
      expect(() => db.run("UPDATE users SET balance = balance + 1 WHERE id = 1")).toThrow(/users_balance_within_cap/);
      expect(() => db.run("DELETE FROM users WHERE id = 1")).toThrow(/FOREIGN KEY/);
      expect(db.query("SELECT sql FROM sqlite_schema WHERE name = 'users'").get()).toEqual({
        sql: expect.stringMatching(/\) STRICT$/),
      });
      db.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a balance already past the cap fails the migration, and the database is left as it was", () => {
    const { dir, path } = before(200_000_000);
    try {
      expect(() => openSqlite({ path, synchronous: "NORMAL", busyTimeoutMs: 5000 })).toThrow(
        /users_balance_within_cap/,
      );
      const db = new Database(path, { readonly: true });
      expect(db.query("SELECT count(*) AS n FROM __drizzle_migrations").get()).toEqual({ n: capMigration });
      expect(db.query("SELECT id, balance FROM users ORDER BY id").all()).toEqual([
        { id: 1, balance: 200_000_000 },
        { id: 2, balance: 7 },
      ]);
      db.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("SQLite: the type CHECKs without IN lists (0004) on a database with data", () => {
  test("keeps every event and history row with its id, ids go on from the largest, and unknown types are still refused", () => {
    const { dir, path, client } = migratedUpTo("0004_check_without_in_lists");
    try {
      client.run("INSERT INTO users (id, name, balance, created_at) VALUES (1, 'a', 90, 0)");
      client.run("INSERT INTO products (id, name, price, stock, created_at) VALUES (1, 'p', 10, 5, 0)");
      client.run(
        "INSERT INTO orders (id, user_id, status, total_amount, discount_amount, paid_amount, created_at) VALUES (1, 1, 'PAID', 10, 0, 10, 0)",
      );
      client.run(
        "INSERT INTO point_history (id, user_id, type, amount, balance_after, order_id, created_at) VALUES (3, 1, 'CHARGE', 100, 100, NULL, 0), (8, 1, 'USE', 10, 90, 1, 1)",
      );
      // Retention has deleted events 1–4 and 6–8: the next id must still be 10.
      client.run(
        `INSERT INTO events (id, type, occurred_at, data) VALUES (5, 'points.charged', 0, '{"a":1}'), (9, 'order.paid', 1, '{"b":2}')`,
      );
      const events = client.query("SELECT * FROM events ORDER BY id").all();
      const history = client.query("SELECT * FROM point_history ORDER BY id").all();
      client.close();

      const db = openSqlite({ path, synchronous: "NORMAL", busyTimeoutMs: 5000 }).$client;
      expect(db.query("SELECT * FROM events ORDER BY id").all()).toEqual(events);
      expect(db.query("SELECT * FROM point_history ORDER BY id").all()).toEqual(history);
      expect(
        db.query("INSERT INTO events (type, occurred_at, data) VALUES ('order.cancelled', 2, '{}') RETURNING id").get(),
      ).toEqual({ id: 10 });
      expect(() => db.run("INSERT INTO events (type, occurred_at, data) VALUES ('order.shipped', 2, '{}')")).toThrow(
        /events_type/,
      );
      expect(() =>
        db.run(
          "INSERT INTO point_history (user_id, type, amount, balance_after, created_at) VALUES (1, 'GIFT', 1, 91, 2)",
        ),
      ).toThrow(/point_history_type/);
      expect(
        db.query("SELECT name FROM sqlite_schema WHERE tbl_name = 'point_history' AND type = 'index'").all(),
      ).toEqual([{ name: "point_history_user_id_idx" }]);
      for (const table of ["events", "point_history"]) {
        expect(db.query("SELECT sql FROM sqlite_schema WHERE name = ?").get(table)).toEqual({
          sql: expect.stringMatching(/\) STRICT$/),
        });
      }
      expect(db.query("SELECT name FROM sqlite_schema WHERE name LIKE '__old_%'").all()).toEqual([]);
      expect(db.query("PRAGMA foreign_key_check").all()).toEqual([]);
      db.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("no table's CHECKs build a temporary b-tree on an insert (an IN list of three or more constants does)", () => {
    const dir = mkdtempSync(join(tmpdir(), "flashcart-migrations-"));
    try {
      const db = openSqlite({ path: join(dir, "flashcart.db"), synchronous: "NORMAL", busyTimeoutMs: 5000 }).$client;
      const tables = db
        .query(
          "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '__drizzle%'",
        )
        .all() as { name: string }[];
      expect(tables.map((t) => t.name)).toContain("events");
      const building: string[] = [];
      for (const { name } of tables) {
        const columns = (db.query(`PRAGMA table_info("${name}")`).all() as { name: string }[]).map(
          (c) => `"${c.name}"`,
        );
        const program = db
          .query(`EXPLAIN INSERT INTO "${name}" (${columns.join(", ")}) VALUES (${columns.map(() => "?").join(", ")})`)
          .all() as { opcode: string }[];
        if (program.some((op) => op.opcode === "OpenEphemeral")) building.push(name);
      }
      expect(building).toEqual([]);
      // The check can see one: the same insert into a table whose CHECK has an IN list of three.
      db.run("CREATE TEMP TABLE in_list (kind text CHECK (kind IN ('a', 'b', 'c')))");
      const program = db.query("EXPLAIN INSERT INTO in_list (kind) VALUES (?)").all() as { opcode: string }[];
      expect(program.some((op) => op.opcode === "OpenEphemeral")).toBe(true);
      db.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

if (TEST_DATABASE_URL === "") {
  console.log("PostgreSQL migration tests not run: set TEST_DATABASE_URL=postgres://… to run them.");
} else {
  describe("PostgreSQL", () => {
    const admin = postgres(TEST_DATABASE_URL, { max: 2, onnotice: () => {} });
    const schemas: string[] = [];
    const freshSchema = () => {
      const schema = `flashcart_migrations_${process.pid}_${randomBytes(4).toString("hex")}`;
      schemas.push(schema);
      return schema;
    };
    const recorded = async (schema: string) => [
      ...(await admin`SELECT id, hash, created_at FROM ${admin(schema)}.__drizzle_migrations ORDER BY id`),
    ];
    afterAll(async () => {
      for (const schema of schemas) await admin.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.end({ timeout: 5 });
    });
    /** What every flashcart build before the runner did: drizzle's migrator, bookkeeping in the search path. */
    const migrateWithDrizzle = async (schema: string) => {
      const client = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {}, connection: { search_path: schema } });
      try {
        await client.unsafe(`CREATE SCHEMA "${schema}"`);
        await drizzlePgMigrate(drizzlePg({ client }), {
          migrationsFolder: migrationsFolder("pg"),
          migrationsSchema: schema,
        });
      } finally {
        await client.end({ timeout: 5 });
      }
    };
    const options = (schema: string) => ({ url: TEST_DATABASE_URL, schema, poolMax: 2, statementTimeoutMs: 10_000 });

    test("a schema migrated by drizzle's migrator opens with nothing applied again", async () => {
      const schema = freshSchema();
      await migrateWithDrizzle(schema);
      const byDrizzle = await recorded(schema);
      expect(byDrizzle).toHaveLength(pgMigrations.length);

      const db = await openPg(options(schema));
      await db.$client.end({ timeout: 5 });
      expect(await recorded(schema)).toEqual(byDrizzle);
    });

    test("two pools opening a new schema together both succeed and migrate it once", async () => {
      const schema = freshSchema();
      const opened = await Promise.all([openPg(options(schema)), openPg(options(schema))]);
      for (const db of opened) await db.$client.end({ timeout: 5 });
      const rows = await recorded(schema);
      expect(rows.map((row) => Number(row.created_at))).toEqual(pgMigrations.map((m) => m.when));

      // The same records drizzle's migrator writes: same hashes, same times.
      const reference = freshSchema();
      await migrateWithDrizzle(reference);
      expect(rows).toEqual(await recorded(reference));
    });
  });
}
