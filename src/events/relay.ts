/**
 * The relay: inside the serving process, it pushes the outbox's events to each configured sink (a
 * webhook, NATS JetStream), at least once and in id order per sink.
 *
 * - One relay delivers at a time across every process on the database (`--workers`, several hosts on
 *   PostgreSQL): the process holding the outbox's relay lock. The others ask for it every second and
 *   take over as soon as its holder releases it or dies.
 * - Per sink, a loop reads the events after the sink's cursor (outside any transaction: on SQLite the
 *   write lock is never held while a sink is talked to), hands them to the sink in id order, and
 *   moves the cursor past those the sink acknowledged. A sink stops at its first failure; the next
 *   attempt starts from there, after a pause that doubles with each failure, jittered. So an event
 *   is sent again only when its acknowledgement was not recorded (a failure, a crash): at least once.
 * - The sinks are independent: one that is down holds back only its own cursor (and the retention).
 * - Requests come first. The relay shares the process's one JavaScript thread with the requests, and
 *   a delivery costs about as much CPU as a request (signing, an HTTP round trip, a JetStream
 *   acknowledgement). While requests are waiting (`busy()`), the relay gives itself at most a
 *   `shareWhenBusy` of the time: after each batch it pauses for as long as the share allows. Under a
 *   stampede that outruns it, delivery falls behind (the lag and the age of the oldest undelivered
 *   event in /metrics show by how much) and catches up at full speed once requests slow down. The
 *   events are safe in the outbox meanwhile.
 */
import type { StoredEvent } from "../domain/events.ts";
import type { Logger } from "../logger.ts";
import type { Outbox } from "../store/port.ts";

export interface Sink {
  /** Its cursor's name in the outbox: "webhook", "nats". */
  readonly name: string;
  /**
   * Delivers `events` in order and answers how many of them, from the first, were acknowledged,
   * and why it stopped short (null when all were). Never throws. `signal` aborts it (shutdown).
   */
  deliver(events: readonly StoredEvent[], signal: AbortSignal): Promise<Delivery>;
  close(): Promise<void>;
}

export interface Delivery {
  delivered: number;
  error: unknown;
}

/** What /metrics learns from the relay (observability/metrics.ts). */
export interface RelayObserver {
  delivered(sink: string, events: readonly StoredEvent[], at: number): void;
  failed(sink: string): void;
}

export interface RelayOptions {
  logger: Logger;
  observer: RelayObserver | null;
  /** The time (epoch ms), for delivery lag. */
  now(): number;
  /** How often an idle sink looks for new events. */
  pollMs?: number;
  /** Events read and handed to a sink at once, at most. */
  batch?: number;
  /** The first pause after a failure; it doubles with each failure in a row, up to maxBackoffMs. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Whether requests are waiting to be served (the HTTP server's pending requests); absent: never. */
  busy?: () => boolean;
  /** The share of the time every sink together may take while busy. */
  shareWhenBusy?: number;
}

/** How often a process that does not hold the relay lock asks for it again. */
const LOCK_RETRY_MS = 1000;

export class Relay {
  private stopping = false;
  private readonly aborted = new AbortController();
  private readonly sleepers = new Set<() => void>();
  private loops: Promise<void>[] = [];
  private holding = false;
  private readonly pollMs: number;
  private readonly batch: number;
  private readonly backoffMs: number;
  private readonly maxBackoffMs: number;
  /** After a batch that took t ms while busy, each sink pauses t × this. */
  private readonly busyPauseFactor: number;

  constructor(
    private readonly outbox: Outbox,
    private readonly sinks: readonly Sink[],
    private readonly options: RelayOptions,
  ) {
    this.pollMs = options.pollMs ?? 100;
    this.batch = options.batch ?? 256;
    this.backoffMs = options.backoffMs ?? 250;
    this.maxBackoffMs = options.maxBackoffMs ?? 30_000;
    const share = (options.shareWhenBusy ?? 0.1) / Math.max(1, sinks.length);
    this.busyPauseFactor = 1 / share - 1;
  }

  start(): void {
    this.loops = this.sinks.map((sink) => this.pump(sink));
  }

  /** Stops every loop (a delivery in flight is aborted), closes the sinks and releases the lock. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.aborted.abort(new Error("the relay is stopping"));
    for (const wake of this.sleepers) wake();
    await Promise.all(this.loops);
    await Promise.all(this.sinks.map((sink) => sink.close().catch(() => {})));
    await this.outbox.relayLock.release().catch(() => {});
  }

  /** A pause that stop() cuts short. */
  private pause(ms: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }

  /** Whether this process holds the relay lock (taking it when it is free); logs the changes. */
  private async holdLock(): Promise<boolean> {
    const holding = await this.outbox.relayLock.acquire();
    if (holding !== this.holding) {
      this.holding = holding;
      this.options.logger.info(holding ? "event relay delivering" : "event relay stood down: another holds the lock");
    }
    return holding;
  }

  private async pump(sink: Sink): Promise<void> {
    const { logger, observer } = this.options;
    /** The sink's cursor as last read or moved; -1: read it again (after the lock was taken). */
    let cursor = -1;
    let failures = 0;
    while (!this.stopping) {
      try {
        if (!(await this.holdLock())) {
          cursor = -1;
          await this.pause(LOCK_RETRY_MS);
          continue;
        }
        if (cursor < 0) cursor = await this.outbox.deliveredTo(sink.name);
        const started = performance.now();
        const events = await this.outbox.eventsAfter(cursor, this.batch);
        if (events.length === 0) {
          await this.pause(this.pollMs);
          continue;
        }
        const { delivered, error } = await sink.deliver(events, this.aborted.signal);
        if (delivered > 0) {
          const done = events.slice(0, delivered);
          cursor = (done[done.length - 1] as StoredEvent).id;
          await this.outbox.markDelivered(sink.name, cursor);
          observer?.delivered(sink.name, done, this.options.now());
        }
        if (delivered === events.length) {
          if (failures > 0) logger.info("event delivery recovered", { sink: sink.name, failures });
          failures = 0;
          if (this.options.busy?.()) await this.pause((performance.now() - started) * this.busyPauseFactor);
          continue;
        }
        if (this.stopping) break;
        failures++;
        observer?.failed(sink.name);
        // The first failure and then every tenth: a sink down for an hour should not flood the log.
        if (failures % 10 === 1) {
          logger.warn("event delivery failed; retrying", {
            sink: sink.name,
            eventId: events[delivered]?.id,
            failures,
            error: error instanceof Error ? error.message : String(error),
          });
        }
      } catch (error) {
        // The database did not answer (down, busy, a full disk): the same back-off, then again.
        if (this.stopping) break;
        failures++;
        cursor = -1;
        if (failures % 10 === 1) {
          logger.warn("event relay cannot read or record its progress; retrying", {
            sink: sink.name,
            failures,
            error: error instanceof Error ? error.message : String(error),
          });
        }
      }
      await this.pause(backoff(failures, this.backoffMs, this.maxBackoffMs));
    }
  }
}

/**
 * The pause after `failures` failures in a row: doubling from `baseMs` up to `maxMs`, then "equal
 * jitter" (between half and all of it), so relays of several deployments hitting one receiver that
 * came back do not retry in step.
 */
export function backoff(failures: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(30, Math.max(0, failures - 1)));
  return ceiling / 2 + random() * (ceiling / 2);
}
