import { drizzle, type PostgresJsDatabase } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import type { PgSynchronousCommit } from "../../durability.ts";
import { runMigrations } from "../migrations.ts";
import * as schema from "./schema.ts";

export type PgDb = PostgresJsDatabase<typeof schema> & { $client: postgres.Sql };

export interface PgOptions {
  url: string;
  /** A schema of its own for flashcart's tables and migration bookkeeping; null: `public`. */
  schema: string | null;
  poolMax: number;
  statementTimeoutMs: number;
  /** Per connection: "on" (durable, the default) or "off" (relaxed), see src/durability.ts. */
  synchronousCommit?: PgSynchronousCommit;
  /** The bound on opening one connection, TCP to the end of authentication (PG_CONNECT_TIMEOUT_MS). */
  connectTimeoutMs?: number;
}

/** The default of PG_CONNECT_TIMEOUT_MS. */
export const PG_CONNECT_TIMEOUT_MS = 1000;

/**
 * How much longer than the statement timeout a connection that owes answers may go without receiving
 * a byte before it is given up on (ANSWER_TIMEOUT, a 503; the patched driver's `answer_timeout`). A
 * statement the server cancels at the timeout is answered with 57014 then; silence beyond that means a
 * server that stopped answering without closing the connection (a network partition, a stopped
 * process), which would otherwise hold its queries until TCP gives up, many minutes later. The margin
 * leaves room for a commit's flush, which the statement timeout does not bound.
 */
const PG_ANSWER_MARGIN_MS = 2000;

/** The longest a connection waits before its next attempt after failed ones (postgres.js: 20 s). */
const RECONNECT_BACKOFF_MAX_S = 0.05;

/**
 * The wait before a connection's next attempt after `failures` failed ones in a row: 5 ms doubling to
 * 50 ms, jittered. A query that needs a connection waits for it, so postgres.js's own backoff (up to
 * 20 s) would hold requests that long while the server is down, and as long again once it is back.
 */
function reconnectBackoff(failures: number): number {
  return Math.min(0.005 * 2 ** failures, RECONNECT_BACKOFF_MAX_S) * (0.5 + Math.random() / 2);
}

/**
 * Any fixed number: every flashcart process takes this advisory lock while it migrates. Earlier builds
 * took it as a session lock; session and transaction advisory locks on one key exclude each other, so
 * old and new processes starting together still migrate one at a time.
 */
const MIGRATION_LOCK = 7_160_917_2026;

/**
 * The settings every flashcart session runs with, set per connection rather than relied on from the
 * server's defaults, which an operator may have changed. pgbench's yardstick (load/pgbench.ts) runs
 * with the same ones.
 */
export function sessionSettings(synchronousCommit: PgSynchronousCommit) {
  return {
    // The configured durability class is the one every commit gets.
    synchronous_commit: synchronousCommit,
    // Every statement flashcart prepares finds rows by key, so the generic plan is the plan. Left to
    // `auto`, PostgreSQL kept planning several of them (the order's facts, the statements inside
    // place_order) afresh on every call, their generic cost estimate being higher: measured, an order
    // cost 1.4-1.8x the PostgreSQL CPU (`bun run bench --scenarios order --variants pg-sharded`, runs
    // alternated: 1634/2094 against 2897/3078 orders/s).
    plan_cache_mode: "force_generic_plan",
  };
}

/** `answer_timeout` is our patch's (patches/postgres@3.4.9.patch), absent from the driver's types. */
function answerTimeout(seconds: number): object {
  return { answer_timeout: seconds };
}

/** Opens a pool and applies pending migrations. */
export async function openPg(options: PgOptions): Promise<PgDb> {
  const searchPath = options.schema ?? "public";
  const client = postgres(options.url, {
    max: options.poolMax,
    // While the server is down or hung, a query fails within about this (see faults.ts), never waits.
    connect_timeout: (options.connectTimeoutMs ?? PG_CONNECT_TIMEOUT_MS) / 1000,
    backoff: reconnectBackoff,
    ...answerTimeout((options.statementTimeoutMs + PG_ANSWER_MARGIN_MS) / 1000),
    onnotice: () => {},
    connection: {
      statement_timeout: options.statementTimeoutMs,
      search_path: searchPath,
      application_name: "flashcart",
      ...sessionSettings(options.synchronousCommit ?? "on"),
    },
  });
  try {
    await migrate(client, searchPath);
    return drizzle({ client, schema }) as PgDb;
  } catch (error) {
    await client.end({ timeout: 1 });
    throw error;
  }
}

/**
 * Applies the pending migrations (see runMigrations) in one transaction under a transaction-level
 * advisory lock: processes starting together migrate one at a time, and the later ones find nothing
 * left to do. Creating the schema and the bookkeeping table happens under the lock too, since
 * concurrent `CREATE … IF NOT EXISTS` of one name can still fail on a unique index. The bookkeeping is
 * the table drizzle's migrator made with migrationsSchema = the search path.
 */
async function migrate(client: postgres.Sql, searchPath: string): Promise<void> {
  await client.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`;
    const schemaName = tx(searchPath);
    await tx`CREATE SCHEMA IF NOT EXISTS ${schemaName}`;
    await tx`CREATE TABLE IF NOT EXISTS ${schemaName}.__drizzle_migrations (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at bigint)`;
    await runMigrations("pg", {
      async lastAppliedAt() {
        const [row] =
          await tx`SELECT created_at FROM ${schemaName}.__drizzle_migrations ORDER BY created_at DESC LIMIT 1`;
        return row === undefined ? null : Number(row.created_at);
      },
      async apply(statements) {
        for (const statement of statements) await tx.unsafe(statement);
      },
      async record(hash, when) {
        await tx`INSERT INTO ${schemaName}.__drizzle_migrations ("hash", "created_at") VALUES (${hash}, ${when})`;
      },
    });
  });
}
