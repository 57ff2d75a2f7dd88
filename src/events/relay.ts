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
 *   a delivery costs up to a whole order's CPU (measured here under load: a signed webhook POST 80–150
 *   µs, a JetStream publish with its acknowledgement 10–16 µs, against ≈ 80 µs for a whole order).
 *   While requests are waiting (`busy()`), each sink delivers small batches at a rate that keeps every
 *   sink together within `shareWhenBusy` of the thread, by each sink's cost per event: its `costUs`
 *   until measured, then the process's CPU over its own deliveries while requests did not wait (about
 *   65 webhook and 600 JetStream events a second at the default 2 % on the machine `costUs` was
 *   measured on; fewer on a slower one, where every delivery costs more of the thread). Under a
 *   stampede that outruns that, delivery falls behind (the age of the oldest undelivered event in
 *   /metrics says by how much) and catches up at full speed once requests stop waiting. The events
 *   are safe in the outbox meanwhile. Why 2 %: a stampede writes events far faster than any share of
 *   the thread could deliver them (11,000 orders a second here), so a larger share hardly shortens the
 *   catch-up and costs the requests throughput; the share is there so that delivery keeps moving, and
 *   at moderate loads requests rarely wait and the relay runs at full speed (2,000 orders a second:
 *   the webhook kept up with every one).
 */
import type { StoredEvent } from "../domain/events.ts";
import type { Logger } from "../logger.ts";
import type { Outbox } from "../store/port.ts";

export interface Sink {
  /** Its cursor's name in the outbox: "webhook", "nats". */
  readonly name: string;
  /**
   * About how much of the thread one event's delivery takes, in µs: the pace while requests wait, until
   * the relay has measured it on this machine (see CostMeter).
   */
  readonly costUs: number;
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
  /** A sink's cost per event as the relay now reckons it (CostMeter), in µs: its pace while requests wait. */
  costed(sink: string, costUs: number): void;
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
  /** Whether requests are waiting to be served (serve.ts: events/busy.ts's requestsWaiting); absent: never. */
  busy?: () => boolean;
  /** The share of the thread every sink together may take while busy (0.02). */
  shareWhenBusy?: number;
}

/**
 * While busy, a batch holds this long's worth of deliveries at the sink's pace. Each batch also costs
 * its read of the outbox and its cursor's write, which `costUs` does not count: at 100 ms (batches of
 * 7 webhook events) they were a fifth of the relay's time in a profile of PostgreSQL orders; at 500 ms
 * they are a twentieth, and the pause between batches is still short beside a stampede.
 */
const BUSY_BATCH_MS = 500;

/** While pacing, how often the relay looks again whether requests still wait. */
const BUSY_CHECK_MS = 100;

/**
 * A sink's cost per event as this process pays it: the process's CPU time over the sink's deliveries
 * made while requests did not wait and no other sink was delivering, so that little else ran in them
 * (what else did only makes the cost larger, and the pace slower, never faster). Counted over at least
 * MEASURED_EVENTS events at a time, then averaged with the earlier figure. A fixed cost per event
 * would hold the relay to its share only on a machine as fast as the one it was measured on: on one
 * five times slower (CPU per request) it took five times its share.
 */
class CostMeter {
  private cpuUs = 0;
  private events = 0;
  private measured = false;

  constructor(public costUs: number) {}

  /** Counts a delivery's CPU; answers whether that made a new figure. */
  add(cpuUs: number, events: number): boolean {
    this.cpuUs += cpuUs;
    this.events += events;
    if (this.events < MEASURED_EVENTS) return false;
    const sample = this.cpuUs / this.events;
    this.costUs = this.measured ? (this.costUs + sample) / 2 : sample;
    this.measured = true;
    this.cpuUs = 0;
    this.events = 0;
    return true;
  }
}

/** Events a sink's measured cost is taken over at a time. */
const MEASURED_EVENTS = 64;

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
  /** Each sink's share of the thread while busy. */
  private readonly busyShare: number;
  /** Deliveries in progress, and how many ever started: a delivery alone from start to end is measured. */
  private delivering = 0;
  private deliveriesStarted = 0;

  constructor(
    private readonly outbox: Outbox,
    private readonly sinks: readonly Sink[],
    private readonly options: RelayOptions,
  ) {
    this.pollMs = options.pollMs ?? 100;
    this.batch = options.batch ?? 256;
    this.backoffMs = options.backoffMs ?? 250;
    this.maxBackoffMs = options.maxBackoffMs ?? 30_000;
    this.busyShare = (options.shareWhenBusy ?? 0.02) / Math.max(1, sinks.length);
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
    if (this.stopping || ms <= 0) return Promise.resolve();
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

  /**
   * The pause that keeps a sink to its share while requests wait: up to `ms`, cut short as soon as they
   * no longer do (a batch holds BUSY_BATCH_MS of deliveries, and a moment of saturation at moderate
   * load must not hold delivery back that long).
   */
  private async yieldWhileBusy(ms: number): Promise<void> {
    const until = performance.now() + ms;
    while (!this.stopping && performance.now() < until) {
      await this.pause(Math.min(BUSY_CHECK_MS, until - performance.now()));
      if (!(this.options.busy?.() ?? false)) return;
    }
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

  /** `sink.deliver`, measured into `cost` when requests are not waiting and no other sink delivers. */
  private async measured(sink: Sink, events: readonly StoredEvent[], busy: boolean, cost: CostMeter) {
    const alone = this.delivering === 0;
    const started = this.deliveriesStarted++;
    this.delivering++;
    const cpu = process.cpuUsage();
    try {
      const delivery = await sink.deliver(events, this.aborted.signal);
      const stillAlone = this.deliveriesStarted === started + 1;
      if (alone && stillAlone && !busy && !(this.options.busy?.() ?? false) && delivery.delivered > 0) {
        const used = process.cpuUsage(cpu);
        if (cost.add(used.user + used.system, delivery.delivered))
          this.options.observer?.costed(sink.name, cost.costUs);
      }
      return delivery;
    } finally {
      this.delivering--;
    }
  }

  private async pump(sink: Sink): Promise<void> {
    const { logger, observer } = this.options;
    const cost = new CostMeter(sink.costUs);
    observer?.costed(sink.name, cost.costUs);
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
        const busy = this.options.busy?.() ?? false;
        /** Events per second this sink may deliver while requests wait. */
        const busyRate = (this.busyShare * 1e6) / cost.costUs;
        const busyBatch = Math.max(1, Math.min(this.batch, Math.round((busyRate * BUSY_BATCH_MS) / 1000)));
        const events = await this.outbox.eventsAfter(cursor, busy ? busyBatch : this.batch);
        if (events.length === 0) {
          await this.pause(this.pollMs);
          continue;
        }
        const { delivered, error } = await this.measured(sink, events, busy, cost);
        if (delivered > 0) {
          const done = events.slice(0, delivered);
          cursor = (done[done.length - 1] as StoredEvent).id;
          await this.outbox.markDelivered(sink.name, cursor);
          observer?.delivered(sink.name, done, this.options.now());
        }
        if (delivered === events.length) {
          if (failures > 0) logger.info("event delivery recovered", { sink: sink.name, failures });
          failures = 0;
          if (busy) await this.yieldWhileBusy((events.length / busyRate) * 1000 - (performance.now() - started));
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
