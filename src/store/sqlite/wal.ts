/**
 * The WAL's size, kept in proportion to the volume it lives on.
 *
 * Every commit appends its pages to the -wal file; a checkpoint copies them back into the database
 * file, after which the WAL starts over from its beginning. SQLite checkpoints every 1,000 pages
 * (4 MB) by default. flashcart lets the WAL grow to 10,000 pages (40 MB) before a checkpoint where
 * there is room for it: each checkpoint copies pages and fsyncs, and under an order stampede the
 * default checkpointed several times a second (+35 % order throughput measured with 10,000).
 *
 * A fixed 40 MB is more than a small volume holds, though: on 24 MB the -wal filled the disk before
 * its first checkpoint, beside a 4 KB database, and then nothing could be checkpointed any more (a
 * checkpoint needs room in the database file), even after a restart. So the WAL gets a budget:
 * - an eighth of the room it can grow into (the volume's free space plus its own size), between 100
 *   and 10,000 pages. A volume with about 320 MB free or more keeps the full 10,000 pages, and with them the
 *   throughput; a small or filling one checkpoints sooner (an empty 24 MB tmpfs: about 750 pages). An eighth leaves
 *   room for the database to take the checkpointed pages and for the next writes;
 * - `wal_autocheckpoint` (a PASSIVE checkpoint at the commit that passes the budget) and
 *   `journal_size_limit` (the file is cut back to the budget when the WAL starts over) follow it;
 * - the keeper re-measures it every second (one statfs, one stat), as the volume fills or frees;
 * - after a second with no commit, a PASSIVE checkpoint copies the WAL back while the loop is idle:
 *   it waits for no lock, and the next burst starts on an empty WAL instead of paying a checkpoint
 *   mid-burst. Under sustained load there is no idle second and only the budget checkpoints;
 * - a WAL past twice its budget (a reader kept an old snapshot, so the checkpoint could not start the
 *   WAL over; or the budget shrank) gets a TRUNCATE checkpoint, which gives its space back to the
 *   volume. Without a busy timeout it does not wait for other connections either.
 * Checkpoints only move committed pages: one that fails (a full disk) loses nothing and is tried again.
 */
import type { Database } from "bun:sqlite";
import { statSync } from "node:fs";
import { freeBytes } from "./faults.ts";
import type { GroupCommit } from "./group-commit.ts";

const MAX_WAL_PAGES = 10_000;
const MIN_WAL_PAGES = 100;
/** The WAL may take this fraction (1/n) of the room it can grow into. */
const WAL_SHARE_DIVISOR = 8;
const KEEPER_PERIOD_MS = 1000;

/** The WAL's budget in pages, given the bytes it could grow into. */
export function walBudgetPages(roomBytes: number, pageSize: number): number {
  const pages = Math.floor(roomBytes / WAL_SHARE_DIVISOR / pageSize);
  return Math.min(MAX_WAL_PAGES, Math.max(MIN_WAL_PAGES, pages));
}

function walBytes(dbPath: string): number {
  try {
    return statSync(`${dbPath}-wal`).size;
  } catch {
    return 0; // no -wal yet
  }
}

function pageSizeOf(client: Database): number {
  return Number(client.query("PRAGMA page_size").values()[0]?.[0]);
}

function applyBudget(client: Database, pages: number, pageSize: number): void {
  client.run(`PRAGMA wal_autocheckpoint = ${pages}`);
  client.run(`PRAGMA journal_size_limit = ${pages * pageSize}`);
}

/** Measures the budget of a file database's WAL and sets it on the connection; returns it in pages. */
export function fitWal(client: Database): number {
  const pageSize = pageSizeOf(client);
  const pages = walBudgetPages(freeBytes(client.filename) + walBytes(client.filename), pageSize);
  applyBudget(client, pages, pageSize);
  return pages;
}

/** Keeps one file database's WAL within its budget (see above) for as long as the store is open. */
export class WalKeeper {
  private readonly timer: ReturnType<typeof setInterval>;
  private readonly pageSize: number;
  private budgetPages: number;
  /** GroupCommit.committedBatches at the previous tick, and at the last idle checkpoint. */
  private committedAtLastTick: number;
  private committedAtCheckpoint: number;

  constructor(
    private readonly client: Database,
    private readonly commits: GroupCommit,
  ) {
    this.pageSize = pageSizeOf(client);
    this.budgetPages = Number(client.query("PRAGMA wal_autocheckpoint").values()[0]?.[0]);
    this.committedAtLastTick = commits.committedBatches;
    this.committedAtCheckpoint = commits.committedBatches;
    this.timer = setInterval(() => this.tick(), KEEPER_PERIOD_MS);
    this.timer.unref();
  }

  /** Checkpoints the whole WAL into the database and empties it, if it can now; a failure is no error. */
  reclaim(): void {
    this.checkpoint("TRUNCATE");
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private tick(): void {
    try {
      this.keep();
    } catch {
      // Housekeeping: whatever failed (the file gone, the connection closed) is tried again next tick.
    }
  }

  private keep(): void {
    const path = this.client.filename;
    const wal = walBytes(path);
    const budget = walBudgetPages(freeBytes(path) + wal, this.pageSize);
    if (budget !== this.budgetPages) {
      applyBudget(this.client, budget, this.pageSize);
      this.budgetPages = budget;
    }
    const committed = this.commits.committedBatches;
    if (wal > 2 * budget * this.pageSize) {
      this.checkpoint("TRUNCATE");
    } else if (committed === this.committedAtLastTick && committed !== this.committedAtCheckpoint) {
      this.checkpoint("PASSIVE");
    }
    this.committedAtLastTick = committed;
  }

  private checkpoint(mode: "PASSIVE" | "TRUNCATE"): void {
    try {
      this.client.run(`PRAGMA wal_checkpoint(${mode})`);
      this.committedAtCheckpoint = this.commits.committedBatches;
    } catch {
      // A full disk (no room in the database file for the pages): tried again on a later tick.
    }
  }
}
