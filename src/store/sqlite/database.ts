import { Database } from "bun:sqlite";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { type BunSQLiteDatabase, drizzle } from "drizzle-orm/bun-sqlite";
import type { SqliteSynchronous } from "../../durability.ts";
import { runMigrations } from "../migrations.ts";
import * as schema from "./schema.ts";
import { fitWal } from "./wal.ts";

export type SqliteDb = BunSQLiteDatabase<typeof schema> & { $client: Database };

export interface SqliteOptions {
  /** A file path, or ":memory:". */
  path: string;
  /** FULL: durable, NORMAL: relaxed (src/durability.ts). */
  synchronous: SqliteSynchronous;
  /** How long opening waits for a lock held by another process (switching to WAL, migrating). */
  busyTimeoutMs: number;
}

/**
 * Opens the database with the settings every connection needs and proves they took effect: Bun opens
 * files with journal_mode=DELETE, which would slow every commit. synchronous is set and asserted even
 * when it matches Bun's FULL: the durability class a deployment claims must be the one it runs.
 *
 * The connection it returns has no busy timeout: a busy timeout waits inside the SQLite call, with
 * the event loop stopped, so while another process held the write lock every request (reads and
 * /health included) waited with the write. Writes wait for that lock in GroupCommit instead, on a
 * timer; reads never need it (WAL readers do not wait for the writer).
 */
export function openSqlite(options: SqliteOptions): SqliteDb {
  const inMemory = options.path === ":memory:";
  if (!inMemory) mkdirSync(dirname(options.path), { recursive: true });
  // Processes starting together on a new file (serve --workers N) can meet an SQLITE_BUSY that the
  // busy timeout does not cover (one switching the file to WAL, or recovering its WAL, while another
  // opens it; seen about once in six two-worker starts on a loaded machine). Opening again after a
  // short pause then succeeds; past the busy timeout the error stands.
  const deadline = Date.now() + options.busyTimeoutMs;
  for (;;) {
    try {
      return openOnce(options, inMemory);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (typeof code !== "string" || !code.startsWith("SQLITE_BUSY") || Date.now() >= deadline) throw error;
      Bun.sleepSync(5 + Math.random() * 20);
    }
  }
}

function openOnce(options: SqliteOptions, inMemory: boolean): SqliteDb {
  const client = new Database(options.path, { create: true, strict: true });
  try {
    // busy_timeout first: switching to WAL needs a lock that another process starting at the same
    // moment may hold, and without a timeout that is an immediate SQLITE_BUSY.
    client.run(`PRAGMA busy_timeout = ${Math.trunc(options.busyTimeoutMs)}`);
    client.run("PRAGMA journal_mode = WAL");
    client.run(`PRAGMA synchronous = ${options.synchronous}`);
    client.run("PRAGMA foreign_keys = ON");
    // Each unit of the group commit runs in a savepoint, which copies every page it changes that
    // an earlier unit of the batch already changed into a statement journal. Past 64 KB that journal
    // spills to a temporary file (opened in /var/tmp, written, dropped at COMMIT): every write
    // statement of an order took 30-45 % longer once the event's insert tipped batches past it.
    // In memory it is a copy; a batch's budget bounds its size (group-commit.ts).
    client.run("PRAGMA temp_store = MEMORY");
    const walPages = inMemory ? null : fitWal(client);
    assertPragmas(client, options, inMemory, walPages);
    migrate(client);
    // Past start-up nothing on this connection waits for a lock (see above).
    client.run("PRAGMA busy_timeout = 0");
    return drizzle({ client, schema });
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

function assertPragmas(client: Database, options: SqliteOptions, inMemory: boolean, walPages: number | null): void {
  const expected: [string, unknown][] = [
    ["journal_mode", inMemory ? "memory" : "wal"],
    ["synchronous", synchronousLevels[options.synchronous]],
    ["busy_timeout", Math.trunc(options.busyTimeoutMs)],
    ["foreign_keys", 1],
    ["temp_store", 2],
  ];
  if (walPages !== null) expected.push(["wal_autocheckpoint", walPages]);
  for (const [name, want] of expected) {
    const got = pragma(client, name);
    if (got !== want) throw new Error(`SQLite refused PRAGMA ${name}: expected ${String(want)}, got ${String(got)}`);
  }
}

/**
 * Applies the pending migrations (see runMigrations) inside one `BEGIN IMMEDIATE` transaction.
 * drizzle's own migrator reads the last applied migration before it takes any lock, so two processes
 * starting on a new database both try to create every table and one of them crashes. Here the second
 * waits for the first, then finds nothing to do.
 */
function migrate(client: Database): void {
  const migrateNow = client.transaction(() => {
    client.run(
      'CREATE TABLE IF NOT EXISTS "__drizzle_migrations" (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at numeric)',
    );
    runMigrations("sqlite", {
      lastAppliedAt() {
        const row = client
          .query('SELECT created_at FROM "__drizzle_migrations" ORDER BY created_at DESC LIMIT 1')
          .values()[0];
        return row === undefined ? null : Number(row[0]);
      },
      apply(statements) {
        for (const statement of statements) client.run(statement);
      },
      record(hash, when) {
        client.run('INSERT INTO "__drizzle_migrations" ("hash", "created_at") VALUES (?, ?)', [hash, when]);
      },
    });
  });
  migrateNow.immediate();
}
