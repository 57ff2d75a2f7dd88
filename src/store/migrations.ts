import { createHash } from "node:crypto";
import { type EmbeddedMigration, pgMigrations, sqliteMigrations } from "./migrations.generated.ts";

/** drizzle's migration record, built exactly as its folder reader builds it (same hash, same split). */
export interface MigrationMeta {
  sql: string[];
  bps: boolean;
  folderMillis: number;
  hash: string;
}

function toMeta(migration: EmbeddedMigration): MigrationMeta {
  return {
    sql: migration.sql.split("--> statement-breakpoint"),
    bps: migration.breakpoints,
    folderMillis: migration.when,
    hash: createHash("sha256").update(migration.sql).digest("hex"),
  };
}

/** The migrations compiled into this build (see migrations.generated.ts), oldest first. */
export function migrationsFor(dialect: "sqlite" | "pg"): MigrationMeta[] {
  return (dialect === "sqlite" ? sqliteMigrations : pgMigrations).map(toMeta);
}

/** When the newest migration of this build was written (drizzle's `created_at` for it). */
export function latestMigrationAt(dialect: "sqlite" | "pg"): number {
  const all = dialect === "sqlite" ? sqliteMigrations : pgMigrations;
  return all.reduce((latest, m) => Math.max(latest, m.when), 0);
}

export function assertMigrated(dialect: "sqlite" | "pg", appliedAt: unknown): void {
  if (Number(appliedAt ?? 0) < latestMigrationAt(dialect)) {
    throw new Error("the database lacks migrations this build expects");
  }
}
