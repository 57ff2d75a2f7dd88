import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { DomainError } from "../domain/errors.ts";
import type { Store } from "../store/port.ts";

/**
 * Prometheus metrics (prom-client), on a registry of the app's own so that several apps in one
 * process (tests) never collide. Names match load/monitoring/grafana-dashboard.json.
 */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 });
  const registers = [registry];
  return {
    registry,
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
    }),
    couponClaims: new Counter({
      name: "flashcart_coupon_claims_total",
      help: "Coupon claims by outcome (issued, or the error code)",
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
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

const outcomeOf = (error: unknown) => (error instanceof DomainError ? error.code : "error");

/**
 * The store with every operation timed, and claims and orders counted by outcome. A wrapper, so
 * neither adapter knows about metrics.
 */
export function instrumentStore(store: Store, metrics: Metrics): Store {
  return new Proxy(store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== "function" || typeof property !== "string") return value;
      return async (...args: unknown[]) => {
        const stopTimer = metrics.storeDuration.startTimer({ operation: property });
        try {
          const result = await value.apply(target, args);
          stopTimer({ result: "ok" });
          if (property === "issueCoupon") metrics.couponClaims.inc({ outcome: "issued" });
          if (property === "placeOrder") {
            metrics.orders.inc({ outcome: (result as { replayed: boolean }).replayed ? "replayed" : "paid" });
          }
          return result;
        } catch (error) {
          stopTimer({ result: error instanceof DomainError ? "rejected" : "error" });
          if (property === "issueCoupon") metrics.couponClaims.inc({ outcome: outcomeOf(error) });
          if (property === "placeOrder") metrics.orders.inc({ outcome: outcomeOf(error) });
          throw error;
        }
      };
    },
  });
}
