import { createHash } from "node:crypto";
import { type EmbeddedMigration, pgMigrations, sqliteMigrations } from "./migrations.generated.ts";

/** One migration of this build, read as drizzle's migrator reads its folder: same statements, same hash. */
interface Migration {
  statements: string[];
  /** SHA-256 of the migration's SQL: drizzle's `hash` column. */
  hash: string;
  /** When drizzle-kit wrote it: drizzle's `created_at` column, compared to tell what is pending. */
  when: number;
}

/** The migrations compiled into this build (see migrations.generated.ts), oldest first. */
function embeddedFor(dialect: "sqlite" | "pg"): EmbeddedMigration[] {
  return dialect === "sqlite" ? sqliteMigrations : pgMigrations;
}

function fromEmbedded(migration: EmbeddedMigration): Migration {
  return {
    statements: migration.sql.split("--> statement-breakpoint"),
    hash: createHash("sha256").update(migration.sql).digest("hex"),
    when: migration.when,
  };
}

/** When the newest migration of this build was written (drizzle's `created_at` for it). */
export function latestMigrationAt(dialect: "sqlite" | "pg"): number {
  return embeddedFor(dialect).reduce((latest, m) => Math.max(latest, m.when), 0);
}

export function assertMigrated(dialect: "sqlite" | "pg", appliedAt: unknown): void {
  if (Number(appliedAt ?? 0) < latestMigrationAt(dialect)) {
    throw new Error("the database lacks migrations this build expects");
  }
}

/**
 * One backend's side of migrating, called inside the transaction (and lock) the backend migrates in.
 * The bookkeeping is drizzle's own table, `__drizzle_migrations(id, hash, created_at)`, so databases
 * migrated by drizzle's migrator (or by earlier flashcart builds, which used it) are read as they are.
 * SQLite answers at once (bun:sqlite transactions cannot await); PostgreSQL answers with promises.
 */
export interface MigrationExecutor<Mode extends "sync" | "async"> {
  /** The `created_at` of the newest recorded migration (as drizzle picks it); null when none is recorded. */
  lastAppliedAt(): Result<Mode, number | null>;
  /** Runs one migration's statements, in order. */
  apply(statements: string[]): Result<Mode, void>;
  /** Records one applied migration: drizzle's hash of its SQL and when drizzle-kit wrote it. */
  record(hash: string, when: number): Result<Mode, void>;
}

type Result<Mode, T> = Mode extends "sync" ? T : Promise<T>;

/**
 * Applies every migration of this build written after the newest recorded one, oldest first, and
 * records each: drizzle's rule, so drizzle and this runner agree on what is pending.
 */
export function runMigrations(dialect: "sqlite" | "pg", executor: MigrationExecutor<"sync">): void;
export function runMigrations(dialect: "sqlite" | "pg", executor: MigrationExecutor<"async">): Promise<void>;
export function runMigrations(
  dialect: "sqlite" | "pg",
  executor: MigrationExecutor<"sync"> | MigrationExecutor<"async">,
): void | Promise<void> {
  // One loop for both backends: each step runs straight after the previous one when the executor
  // answers at once, and chains on its promise when it answers later.
  return andThen(executor.lastAppliedAt(), (last) => {
    const pending = embeddedFor(dialect)
      .map(fromEmbedded)
      .filter((m) => last === null || last < m.when);
    return pending.reduce<void | Promise<void>>(
      (previous, migration) =>
        andThen(previous, () =>
          andThen(executor.apply(migration.statements), () => executor.record(migration.hash, migration.when)),
        ),
      undefined,
    );
  });
}

/** `next(value)`, at once for a plain value, once settled for a promise. */
function andThen<T, U>(value: T | Promise<T>, next: (value: T) => U | Promise<U>): U | Promise<U> {
  return value instanceof Promise ? value.then(next) : next(value);
}
