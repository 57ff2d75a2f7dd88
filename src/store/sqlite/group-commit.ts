import type { Database } from "bun:sqlite";
import { Unavailable, unavailable } from "../../domain/errors.ts";
import { isBusy, WRITE_LOCK, writeFault } from "./faults.ts";

/**
 * Pauses between two attempts at a write lock held by another connection: short at first (another
 * worker's commit holds it well under a millisecond), then every 25 ms until the write's bound.
 * SQLite's own busy handler sleeps 1, 2, 5, 10, … 100 ms, but inside the call, blocking the event loop.
 */
const LOCK_RETRY_DELAYS_MS = [1, 2, 5, 10, 25];

export interface GroupCommitOptions {
  /** How long a write waits for a write lock held by another connection before it is refused with 503. */
  lockWaitMs: number;
  /** Units per transaction at most. */
  maxBatch?: number;
  /** Milliseconds of units' work per transaction at most, before it commits (see BATCH_BUDGET_MS). */
  maxBatchMs?: number;
  /** Called once a batch's transaction has ended: committed, or rolled back as a whole. */
  afterBatch?: (committed: boolean) => void;
}

/**
 * A batch stops taking units after this much work and commits, and the event loop gets a turn
 * before the next batch: a full batch of 256 orders under a stampede ran about 5 ms with the loop
 * stopped, every response waiting behind it. A tighter bound (1 ms) made batches small enough that
 * their commits cost more than the waits they saved (orders/s down, p99 up, in alternated runs), so
 * the bound only clips the longest batches; 256 claims take about 1.5 ms.
 */
const BATCH_BUDGET_MS = 4;

/**
 * Group commit for SQLite writes.
 *
 * A commit costs far more than the statements it commits (measured here: one order alone 55 µs, in
 * batches of 8 about 24 µs each), because every commit writes its dirty pages to the WAL. Writes that
 * arrive in the same turn of the event loop are therefore run in ONE `BEGIN IMMEDIATE` transaction,
 * each inside its own savepoint:
 * - a unit of work that throws is rolled back to its savepoint alone and its caller gets the error;
 *   the others are unaffected, exactly as if each had its own transaction;
 * - units run in arrival order, so first come stays first served;
 * - every unit is synchronous: the transaction never spans an await;
 * - no promise resolves before COMMIT has returned, so a 2xx still means committed. If the commit
 *   itself fails, every unit of the batch is rejected and nothing of it is kept.
 *
 * The connection has no busy timeout (a busy timeout waits inside the call, with the event loop
 * stopped: reads and /health would wait too). When another connection holds the write lock, BEGIN
 * IMMEDIATE fails at once with SQLITE_BUSY and the queue is tried again on a timer (see waitForLock);
 * in normal operation that path is never taken.
 */
export class GroupCommit {
  private pending: Unit[] = [];
  /** A flush is due: on the next turn of the loop, or on a timer while the write lock is held elsewhere. */
  private scheduled = false;
  /** Attempts at the lock in the current wait for it; 0 when not waiting. */
  private lockAttempts = 0;
  private whenSettled: (() => void)[] = [];
  /** Called once the running batch has committed; dropped if it fails (see onCommit). */
  private afterCommit: (() => void)[] = [];
  /** Batches committed so far (the WAL keeper tells from it whether the loop has been idle). */
  committedBatches = 0;
  /**
   * Why the last write failed, when it failed for a fault (a full disk, the write lock held past the
   * bound); null once a batch commits. /ready is 503 while it is set (see SqliteStore.ping).
   */
  lastFault: Unavailable | null = null;
  private readonly lockWaitMs: number;
  private readonly maxBatch: number;
  private readonly maxBatchMs: number;
  private readonly afterBatch: (committed: boolean) => void;
  private readonly path: string;
  private readonly begin;
  private readonly commit;
  private readonly rollback;
  private readonly savepoint;
  private readonly release;
  private readonly rollbackToSavepoint;

  constructor(
    private readonly client: Database,
    options: GroupCommitOptions,
  ) {
    this.lockWaitMs = options.lockWaitMs;
    this.maxBatch = options.maxBatch ?? 256;
    this.maxBatchMs = options.maxBatchMs ?? BATCH_BUDGET_MS;
    this.afterBatch = options.afterBatch ?? (() => {});
    this.path = client.filename;
    this.begin = client.prepare("BEGIN IMMEDIATE");
    this.commit = client.prepare("COMMIT");
    this.rollback = client.prepare("ROLLBACK");
    this.savepoint = client.prepare("SAVEPOINT unit");
    this.release = client.prepare("RELEASE unit");
    this.rollbackToSavepoint = client.prepare("ROLLBACK TO unit");
  }

  /** Runs `work` inside the next batch transaction; resolves with its result once the batch has committed. */
  run<T>(work: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ work, resolve: resolve as (value: unknown) => void, reject, deadline: 0 });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(this.flush);
      }
    });
  }

  /**
   * Called from inside a unit: runs `then` right after the batch commits, before any of its callers
   * hears back, and never if the batch fails. For what may only be remembered once it is committed.
   */
  onCommit(then: () => void): void {
    this.afterCommit.push(then);
  }

  /** Resolves once nothing is queued: every write queued so far has committed or been refused. */
  settled(): Promise<void> {
    if (this.pending.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.whenSettled.push(resolve));
  }

  /**
   * One tiny write outside any batch, committed (it rewrites the user_version header field with its
   * own value, so a page goes to the WAL): it succeeds only when the write lock is free and the disk
   * takes a page. Clears the remembered fault when it commits; throws the fault otherwise. Called
   * only while a fault is remembered: no write of its own in normal operation.
   */
  probeWrite(): void {
    try {
      this.begin.run();
      const version = Number(this.client.query("PRAGMA user_version").values()[0]?.[0] ?? 0);
      this.client.run(`PRAGMA user_version = ${version}`);
      this.commit.run();
    } catch (error) {
      this.rollbackQuietly();
      throw writeFault(error, this.path);
    }
    this.lastFault = null;
  }

  /**
   * Commits one batch of what is queued, unless another connection holds the write lock, and comes
   * back on the next turn of the loop for the rest (with whatever arrived meanwhile).
   */
  private readonly flush = (): void => {
    if (this.pending.length === 0) {
      this.idle();
      return;
    }
    try {
      this.begin.run();
    } catch (error) {
      if (isBusy(error)) {
        this.waitForLock(error);
        return;
      }
      this.fail(this.pending.splice(0, this.maxBatch), error);
      setImmediate(this.flush);
      return;
    }
    this.lockAttempts = 0;
    this.commitBatch(this.pending.splice(0, this.maxBatch));
    if (this.pending.length > 0) setImmediate(this.flush);
    else this.idle();
  };

  private idle(): void {
    this.scheduled = false;
    this.lockAttempts = 0;
    if (this.whenSettled.length > 0) for (const resolve of this.whenSettled.splice(0)) resolve();
  }

  /**
   * BEGIN IMMEDIATE found the write lock held by another connection (another process, a backup, the
   * sqlite3 shell). The queue stays as it is and is tried again after a pause, on a timer, so the
   * event loop serves reads meanwhile; writes arriving meanwhile join it. A write still waiting
   * `lockWaitMs` after its first attempt met the lock is refused with 503.
   */
  private waitForLock(busy: unknown): void {
    const now = performance.now();
    // Deadlines grow along the queue (arrival order, stamped at their first attempt), so the writes
    // past theirs are at its head.
    let expired = 0;
    for (const unit of this.pending) {
      if (unit.deadline === 0) unit.deadline = now + this.lockWaitMs;
      if (unit.deadline <= now) expired++;
    }
    if (expired > 0) {
      const refusal = unavailable.dependency(WRITE_LOCK, busy);
      this.lastFault = refusal;
      for (const unit of this.pending.splice(0, expired)) unit.reject(refusal);
    }
    if (this.pending.length === 0) {
      this.idle();
      return;
    }
    const delay = LOCK_RETRY_DELAYS_MS[Math.min(this.lockAttempts++, LOCK_RETRY_DELAYS_MS.length - 1)];
    setTimeout(this.flush, delay);
  }

  private commitBatch(taken: Unit[]): void {
    const outcomes: Outcome[] = [];
    const started = performance.now();
    let batch = taken;
    try {
      for (const [index, unit] of taken.entries()) {
        if (index > 0 && performance.now() - started >= this.maxBatchMs) {
          // Over the budget: the rest goes back to the head of the queue, for the next batch.
          batch = taken.slice(0, index);
          this.pending.unshift(...taken.slice(index));
          break;
        }
        this.savepoint.run();
        try {
          outcomes.push({ ok: true, value: unit.work() });
          this.release.run();
        } catch (error) {
          try {
            this.rollbackToSavepoint.run();
          } catch {
            // SQLite rolled the whole transaction back by itself (a full disk, an I/O error): no
            // savepoint is left, and the batch fails as a whole, with this unit's error.
            throw error;
          }
          this.release.run();
          outcomes.push({ ok: false, error: writeFault(error, this.path) });
        }
      }
      this.commit.run();
    } catch (error) {
      // The transaction as a whole failed (disk full, I/O error, …): nothing of this batch is kept.
      this.afterCommit = [];
      this.rollbackQuietly();
      this.afterBatch(false);
      this.fail(batch, error);
      return;
    }
    this.afterBatch(true);
    this.committedBatches++;
    this.lastFault = null;
    if (this.afterCommit.length > 0) {
      const committed = this.afterCommit;
      this.afterCommit = [];
      for (const then of committed) {
        try {
          then();
        } catch {
          // Remembering is an optimisation: the batch has committed and its callers hear so.
        }
      }
    }
    batch.forEach((unit, i) => {
      const outcome = outcomes[i] as Outcome;
      if (outcome.ok) unit.resolve(outcome.value);
      else unit.reject(outcome.error);
    });
  }

  private fail(batch: Unit[], error: unknown): void {
    const fault = writeFault(error, this.path);
    if (fault instanceof Unavailable) this.lastFault = fault;
    for (const unit of batch) unit.reject(fault);
  }

  private rollbackQuietly(): void {
    try {
      if (this.client.inTransaction) this.rollback.run();
    } catch {
      // already rolled back by SQLite
    }
  }
}

interface Unit {
  work: () => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  /** When waiting for a lock held elsewhere: the moment (performance.now()) this write is refused; 0 before. */
  deadline: number;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };
