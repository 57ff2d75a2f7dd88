import { drizzle, type PostgresJsDatabase } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import { migrationsFor } from "../migrations.ts";
import * as schema from "./schema.ts";

export type PgDb = PostgresJsDatabase<typeof schema> & { $client: postgres.Sql };

export interface PgOptions {
  url: string;
  /** A schema of its own for flashcart's tables and migration bookkeeping; null: `public`. */
  schema: string | null;
  poolMax: number;
  statementTimeoutMs: number;
}

/** Any fixed number: every flashcart process takes this advisory lock while it migrates. */
const MIGRATION_LOCK = 7_160_917_2026;

/**
 * Opens a pool and applies pending migrations. Processes starting together migrate one at a time,
 * serialised by a PostgreSQL advisory lock, so the second finds nothing left to do.
 */
export async function openPg(options: PgOptions): Promise<PgDb> {
  const searchPath = options.schema ?? "public";
  const client = postgres(options.url, {
    max: options.poolMax,
    onnotice: () => {},
    connection: {
      statement_timeout: options.statementTimeoutMs,
      search_path: searchPath,
      application_name: "flashcart",
    },
  });
  try {
    if (options.schema !== null) await client.unsafe(`CREATE SCHEMA IF NOT EXISTS "${options.schema}"`);
    const db = drizzle({ client, schema }) as PgDb;
    const lock = await client.reserve();
    try {
      await lock`SELECT pg_advisory_lock(${MIGRATION_LOCK})`;
      // drizzle's own PostgreSQL migrator, fed the migrations embedded in this build.
      const { dialect, session } = db as unknown as {
        dialect: { migrate(m: unknown, s: unknown, c: { migrationsSchema: string }): Promise<void> };
        session: unknown;
      };
      await dialect.migrate(migrationsFor("pg"), session, { migrationsSchema: searchPath });
    } finally {
      await lock`SELECT pg_advisory_unlock(${MIGRATION_LOCK})`;
      lock.release();
    }
    return db;
  } catch (error) {
    await client.end({ timeout: 1 });
    throw error;
  }
}
