import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { DomainError } from "../domain/errors.ts";
import { eventTypes, type StoredEvent } from "../domain/events.ts";
import type { RelayObserver } from "../events/relay.ts";
import { type Outbox, type Store, storeOperations } from "../store/port.ts";

/** prom-client's default metrics that a scrape pays for with a walk of the heap (see createMetrics). */
export const HEAP_SPACE_GAUGES = [
  "nodejs_heap_space_size_total_bytes",
  "nodejs_heap_space_size_used_bytes",
  "nodejs_heap_space_size_available_bytes",
] as const;

/**
 * Prometheus metrics (prom-client), on a registry of the app's own so that several apps in one
 * process (tests) never collide. Names match load/monitoring/grafana-dashboard.json.
 */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 });
  // Except the heap-space gauges: on Bun, v8.getHeapSpaceStatistics() walks the whole heap, with the
  // event loop stopped. With two million objects on the heap (the claim memory holds up to two
  // million holdings) one scrape took 110 ms, every request in flight waiting behind it. The heap's
  // total and used bytes stay (nodejs_heap_size_*_bytes, from process.memoryUsage()).
  for (const name of HEAP_SPACE_GAUGES) registry.removeSingleMetric(name);
  const registers = [registry];
  // A plain number, read when Prometheus scrapes: cheaper than a gauge update twice per request.
  const requests = { inFlight: 0 };
  return {
    registry,
    requests,
    httpDuration: new Histogram({
      name: "flashcart_http_request_duration_seconds",
      help: "HTTP request duration by route template and status",
      labelNames: ["method", "route", "status"] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    inFlight: new Gauge({
      name: "flashcart_http_requests_in_flight",
      help: "HTTP requests being served",
      registers,
      collect() {
        this.set(requests.inFlight);
      },
    }),
    couponClaims: new Counter({
      name: "flashcart_coupon_claims_total",
      help: "Coupon claims by outcome (claimed, or the error code)",
      labelNames: ["outcome"] as const,
      registers,
    }),
    orders: new Counter({
      name: "flashcart_orders_total",
      help: "Order placements by outcome (paid, replayed, or the error code)",
      labelNames: ["outcome"] as const,
      registers,
    }),
    storeDuration: new Histogram({
      name: "flashcart_db_operation_duration_seconds",
      help: "Store operation duration (each write is one transaction) by operation and result",
      labelNames: ["operation", "result"] as const,
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    }),
    eventsDelivered: new Counter({
      name: "flashcart_events_delivered_total",
      help: "Events a sink acknowledged, by sink (a repeat after a lost acknowledgement counts again)",
      labelNames: ["sink"] as const,
      registers,
    }),
    eventsFailed: new Counter({
      name: "flashcart_events_failed_total",
      help: "Failed delivery attempts by sink (each is retried)",
      labelNames: ["sink"] as const,
      registers,
    }),
    deliveryCost: new Gauge({
      name: "flashcart_events_delivery_cost_seconds",
      help: "CPU time this process spends delivering one event, by sink, as the relay measures it (its starting estimate until then); it sets the relay's pace while requests wait",
      labelNames: ["sink"] as const,
      registers,
    }),
    deliveryLag: new Histogram({
      name: "flashcart_events_delivery_lag_seconds",
      help: "From an event's occurredAt to its acknowledgement by the sink",
      labelNames: ["sink"] as const,
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
      registers,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/**
 * The outbox's gauges, read when Prometheus scrapes: events written by this process (by type), and
 * for each configured sink the age of the oldest event it has not received (0 when it has them all),
 * read from the database, so that every worker answers it whichever holds the relay.
 */
export function observeOutbox(metrics: Metrics, outbox: Outbox, sinks: readonly string[], now: () => number): void {
  const registers = [metrics.registry];
  const counted: Record<string, number> = {};
  new Counter({
    name: "flashcart_events_written_total",
    help: "Events written by this process's committed writes, by type",
    labelNames: ["type"] as const,
    registers,
    collect() {
      for (const type of eventTypes) {
        const written = outbox.tally.written[type];
        const more = written - (counted[type] ?? 0);
        if (more > 0 || counted[type] === undefined) this.inc({ type }, more);
        counted[type] = written;
      }
    },
  });
  new Gauge({
    name: "flashcart_events_oldest_undelivered_age_seconds",
    help: "Age of the oldest event a sink has not received yet, by sink (0: it has them all)",
    labelNames: ["sink"] as const,
    registers,
    async collect() {
      for (const sink of sinks) {
        try {
          const oldest = await outbox.oldestUndelivered(sink);
          this.set({ sink }, oldest === null ? 0 : Math.max(0, (now() - oldest) / 1000));
        } catch {
          // the database did not answer: the gauge keeps its last value
        }
      }
    },
  });
}

/** What the relay tells /metrics: deliveries, failed attempts, the lag of each event delivered, each sink's cost. */
export function relayObserver(metrics: Metrics): RelayObserver {
  const delivered = childCache((sink) => metrics.eventsDelivered.labels(sink));
  const failed = childCache((sink) => metrics.eventsFailed.labels(sink));
  const lag = childCache((sink) => metrics.deliveryLag.labels(sink));
  return {
    delivered(sink: string, events: readonly StoredEvent[], at: number) {
      delivered(sink).inc(events.length);
      const observe = lag(sink);
      for (const event of events) observe.observe(Math.max(0, (at - event.occurredAt) / 1000));
    },
    failed(sink: string) {
      failed(sink).inc();
    },
    costed(sink: string, costUs: number) {
      metrics.deliveryCost.set({ sink }, costUs / 1e6);
    },
  };
}

const outcomeOf = (error: unknown) => (error instanceof DomainError ? error.code : "error");

/**
 * A metric's labelled children, each made once per key and kept: prom-client hashes the labels on every
 * `labels()` call, which was measurable per request. Several labels share one key, joined by spaces
 * (no label value here contains one), which `make` splits on the first use only.
 */
export function childCache<C>(make: (key: string) => C): (key: string) => C {
  const children = new Map<string, C>();
  return (key) => {
    let child = children.get(key);
    if (child === undefined) {
      child = make(key);
      children.set(key, child);
    }
    return child;
  };
}

/**
 * The store with every operation timed, and claims and orders counted by outcome. A wrapper, so
 * neither adapter knows about metrics.
 */
export function instrumentStore(store: Store, metrics: Metrics): Store {
  const timers = childCache((key) => metrics.storeDuration.labels(...(key.split(" ") as [string, string])));
  const timer = (operation: string, result: string) => timers(`${operation} ${result}`);
  const claims = childCache((outcome) => metrics.couponClaims.labels(outcome));
  const orders = childCache((outcome) => metrics.orders.labels(outcome));
  const instrumented: Record<string, unknown> = { outbox: store.outbox };
  for (const operation of storeOperations) {
    const method = (store[operation] as (...args: unknown[]) => Promise<unknown>).bind(store);
    const counter = operation === "claimCoupon" ? claims : operation === "placeOrder" ? orders : null;
    const ok = timer(operation, "ok");
    const rejected = timer(operation, "rejected");
    const failed = timer(operation, "error");
    // `.then` on the store's own promise: no extra async frame on the hot path.
    instrumented[operation] = (...args: unknown[]) => {
      const started = performance.now();
      return method(...args).then(
        (result) => {
          ok.observe((performance.now() - started) / 1000);
          if (counter !== null) {
            const replayed = (result as { replayed?: boolean }).replayed === true;
            counter(operation === "claimCoupon" ? "claimed" : replayed ? "replayed" : "paid").inc();
          }
          return result;
        },
        (error: unknown) => {
          (error instanceof DomainError ? rejected : failed).observe((performance.now() - started) / 1000);
          counter?.(outcomeOf(error)).inc();
          throw error;
        },
      );
    };
  }
  return instrumented as unknown as Store;
}
