/**
 * SQLite's faults, as the answers of domain/errors.ts: a write lock held elsewhere is
 * SERVICE_UNAVAILABLE (503), a full disk STORAGE_FULL (507). Everything else a write throws (a
 * refusal, a constraint) passes through unchanged.
 */
import { statfsSync } from "node:fs";
import { dirname } from "node:path";
import { DomainError, unavailable } from "../../domain/errors.ts";

/** What a 503 names when a write waited for the lock in vain (another process, a backup, the sqlite3 shell). */
export const WRITE_LOCK = "the SQLite write lock";

/**
 * A volume with less free space than this counts as full: more than the largest batch of writes
 * needs (256 orders dirty a few hundred KB of pages), so a write that fits is not refused for it, and
 * /ready does not flap between a write that squeezes into the WAL's leftover room and the next that
 * does not.
 */
export const STORAGE_HEADROOM_BYTES = 1024 * 1024;

function sqliteCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && code.startsWith("SQLITE_") ? code : undefined;
}

/** SQLITE_BUSY and its extended codes: another connection holds the lock this one asked for. */
export function isBusy(error: unknown): boolean {
  return sqliteCode(error)?.startsWith("SQLITE_BUSY") === true;
}

/** Bytes a process may still write on the volume holding `dbPath` (Infinity when that cannot be told). */
export function freeBytes(dbPath: string): number {
  try {
    const volume = statfsSync(dirname(dbPath));
    return volume.bavail * volume.bsize;
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

/**
 * The error a write's caller gets for `error`. A full disk reaches SQLite as ENOSPC, which it reports
 * as SQLITE_FULL, or, when it struck while growing the -shm index or syncing, as an I/O error: an
 * SQLITE_IOERR counts as a full disk when the volume is (nearly) full, and stays an I/O error, a bug
 * to look at, otherwise.
 */
export function writeFault(error: unknown, dbPath: string): unknown {
  if (error instanceof DomainError) return error;
  const code = sqliteCode(error);
  if (code === undefined) return error;
  if (code === "SQLITE_FULL") return unavailable.storageFull(error);
  if (code.startsWith("SQLITE_IOERR") && freeBytes(dbPath) < STORAGE_HEADROOM_BYTES) {
    return unavailable.storageFull(error);
  }
  if (code.startsWith("SQLITE_BUSY")) return unavailable.dependency(WRITE_LOCK, error);
  return error;
}
