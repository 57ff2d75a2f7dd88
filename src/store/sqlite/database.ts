import { Database } from "bun:sqlite";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { type BunSQLiteDatabase, drizzle } from "drizzle-orm/bun-sqlite";
import { migrate } from "drizzle-orm/bun-sqlite/migrator";
import * as schema from "./schema.ts";

export type SqliteDb = BunSQLiteDatabase<typeof schema> & { $client: Database };

export interface SqliteOptions {
  /** A file path, or ":memory:". */
  path: string;
  synchronous: "NORMAL" | "FULL";
  busyTimeoutMs: number;
  migrationsFolder?: string;
}

export const sqliteMigrationsFolder = join(import.meta.dir, "../../../drizzle/sqlite");

/**
 * Opens the database with the settings every connection needs and proves they took effect: Bun opens
 * files with journal_mode=DELETE, synchronous=FULL and busy_timeout=0, which would turn concurrent
 * writers into SQLITE_BUSY errors and slow every commit.
 */
export function openSqlite(options: SqliteOptions): SqliteDb {
  const inMemory = options.path === ":memory:";
  if (!inMemory) mkdirSync(dirname(options.path), { recursive: true });
  const client = new Database(options.path, { create: true, strict: true });
  try {
    client.run("PRAGMA journal_mode = WAL");
    client.run(`PRAGMA synchronous = ${options.synchronous}`);
    client.run(`PRAGMA busy_timeout = ${Math.trunc(options.busyTimeoutMs)}`);
    client.run("PRAGMA foreign_keys = ON");
    assertPragmas(client, options, inMemory);
    const db = drizzle({ client, schema });
    migrate(db, { migrationsFolder: options.migrationsFolder ?? sqliteMigrationsFolder });
    return db;
  } catch (error) {
    client.close();
    throw error;
  }
}

const synchronousLevels = { OFF: 0, NORMAL: 1, FULL: 2, EXTRA: 3 } as const;

function pragma(client: Database, name: string): unknown {
  const row = client.query(`PRAGMA ${name}`).values()[0];
  return row?.[0];
}

function assertPragmas(client: Database, options: SqliteOptions, inMemory: boolean): void {
  const expected: [string, unknown][] = [
    ["journal_mode", inMemory ? "memory" : "wal"],
    ["synchronous", synchronousLevels[options.synchronous]],
    ["busy_timeout", Math.trunc(options.busyTimeoutMs)],
    ["foreign_keys", 1],
  ];
  for (const [name, want] of expected) {
    const got = pragma(client, name);
    if (got !== want) throw new Error(`SQLite refused PRAGMA ${name}: expected ${String(want)}, got ${String(got)}`);
  }
}
