/**
 * The outbox on SQLite. Events are written by the write units themselves (writes.ts); here they are
 * only read, outside any transaction (WAL readers never wait for the writer, and never hold the
 * write lock while the relay talks to a sink), and the sinks' cursors are moved forward by small
 * units of the group commit.
 *
 * Ids: one writer at a time assigns them under the write lock (the rowid, the largest plus one: see
 * schema.ts), and a batch commits all of its events at once, so ids increase in commit order and a
 * reader never sees an id before a smaller one.
 */
import { Database } from "bun:sqlite";
import { EventTally, type StoredEvent } from "../../domain/events.ts";
import type { Outbox, RelayLock } from "../port.ts";
import { isBusy } from "./faults.ts";
import type { GroupCommit } from "./group-commit.ts";
import type { Statements } from "./statements.ts";
import { changesOf } from "./writes.ts";

/** Retention deletes this many events per unit of work at most, so the write lock is never held long. */
const PURGE_CHUNK = 5_000;

export class SqliteOutbox implements Outbox {
  readonly tally = new EventTally();
  readonly relayLock: RelayLock;

  constructor(
    private readonly q: Statements,
    private readonly commits: GroupCommit,
    readonly recording: boolean,
    dbPath: string,
  ) {
    this.relayLock = dbPath === ":memory:" ? new ProcessLock() : new FileLock(`${dbPath}.relay-lock`);
  }

  async eventsAfter(after: number, limit: number): Promise<StoredEvent[]> {
    return this.q.eventsAfter.all({ after, limit });
  }

  async deliveredTo(sink: string): Promise<number> {
    return this.q.deliveredTo.get({ sink })?.id ?? 0;
  }

  markDelivered(sink: string, id: number): Promise<void> {
    return this.commits.run(() => {
      this.q.markDelivered.run({ sink, id });
    });
  }

  async oldestUndelivered(sink: string): Promise<number | null> {
    const [next] = this.q.eventsAfter.all({ after: await this.deliveredTo(sink), limit: 1 });
    return next?.occurredAt ?? null;
  }

  async purgeEvents(before: number, sinks: readonly string[]): Promise<number> {
    let upTo = Number.MAX_SAFE_INTEGER;
    for (const sink of sinks) upTo = Math.min(upTo, await this.deliveredTo(sink));
    let removed = 0;
    for (;;) {
      const chunk = await this.commits.run(() =>
        changesOf(this.q.purgeEvents.run({ upTo, before, limit: PURGE_CHUNK })),
      );
      removed += chunk;
      if (chunk < PURGE_CHUNK) return removed;
    }
  }
}

/**
 * The relay's lock across the processes sharing a database file: an exclusive lock on a small file of
 * its own beside it (an empty SQLite database held in `BEGIN EXCLUSIVE`), which the operating system
 * releases when the holder dies, however it dies. The holder never writes to it. SQLite tells another
 * connection that asks for it SQLITE_BUSY at once, in another process or in this one.
 */
class FileLock implements RelayLock {
  private holding: Database | null = null;

  constructor(private readonly path: string) {}

  async acquire(): Promise<boolean> {
    if (this.holding !== null) return true;
    const file = new Database(this.path, { create: true });
    try {
      file.run("BEGIN EXCLUSIVE");
    } catch (error) {
      file.close();
      if (isBusy(error)) return false;
      throw error;
    }
    this.holding = file;
    return true;
  }

  async held(): Promise<boolean> {
    return this.holding !== null;
  }

  async release(): Promise<void> {
    const file = this.holding;
    this.holding = null;
    if (file === null) return;
    file.run("ROLLBACK");
    file.close();
  }
}

/** An in-memory database has one process: the lock is always this process's. */
class ProcessLock implements RelayLock {
  async acquire(): Promise<boolean> {
    return true;
  }

  async held(): Promise<boolean> {
    return true;
  }

  async release(): Promise<void> {}
}
