/**
 * Whether requests are waiting for the process's one JavaScript thread: the relay's `busy` (relay.ts),
 * which keeps it to a small share of the thread while they are.
 *
 * Waiting for the thread, not merely in flight. Requests in flight at the moment the relay asks tell
 * neither way: an order in flight is mostly waiting for its commit's fsync, with the thread free (at
 * 2,000 orders a second, half the machine, the relay counting those as busy kept the webhook to
 * 23,559 of 39,709 events in 20 s); and a claim answered from memory finishes within its own turn of
 * the loop, so during a stampede of them the relay found none in flight at most of its checks and ran
 * at full speed (service CPU per claim 43 → 63 µs). So requests are waiting when either
 * - many are in flight at once (a queue has built up: at 2,000 orders a second a handful are, under a
 *   stampede of 100 connections most of them are), or
 * - over the last window the process answered some and used most of a CPU: claims answered from memory
 *   (few in flight at any moment, the thread full), and durable orders, whose stampede saturates the
 *   thread with ≈ 0.76 of a CPU, the rest of it blocked in fsync. The window holds the decision while
 *   a committed batch's answers empty the queue for a moment; at 0.8 it missed the orders and the
 *   relay ran at full speed between those moments (orders 0.66 and 0.77 of their rate with events off,
 *   against 0.89 and 0.90 at 0.7, `bun run bench --events --rounds 2 --scenarios coupon,order
 *   --variants sqlite`). At 2,000 orders a second the process uses ≈ 0.5 of a CPU, the relay's own
 *   full speed included, and the webhook kept up with every order.
 * Not when the CPU is full and no request came (the relay catching up on its own), nor when a few
 * requests are in flight and the thread has room.
 */

export interface ThreadProbe {
  /** Requests being handled now. */
  inFlight(): number;
  /** Requests received so far (a counter). */
  received(): number;
  /** CPU time used by the process so far, in ms. */
  cpuMs(): number;
  /** A monotonic clock, in ms. */
  now(): number;
}

export interface BusyOptions {
  /** How long a window of CPU use is (the decision holds for the next one). */
  windowMs?: number;
  /** The share of one CPU over a window that counts as saturated. */
  saturatedShare?: number;
  /** Requests in flight at once that count as a queue. */
  queued?: number;
}

export function requestsWaiting(probe: ThreadProbe, options: BusyOptions = {}): () => boolean {
  const windowMs = options.windowMs ?? 100;
  const saturatedShare = options.saturatedShare ?? 0.7;
  const queued = options.queued ?? 32;
  let started = probe.now();
  let cpuAtStart = probe.cpuMs();
  let receivedAtStart = probe.received();
  let saturated = false;
  return () => {
    if (probe.inFlight() >= queued) return true;
    const now = probe.now();
    if (now - started >= windowMs) {
      const cpuMs = probe.cpuMs();
      const received = probe.received();
      saturated = received > receivedAtStart && (cpuMs - cpuAtStart) / (now - started) >= saturatedShare;
      started = now;
      cpuAtStart = cpuMs;
      receivedAtStart = received;
    }
    return saturated;
  };
}

/** The probe of this process: Bun's server for requests in flight, a count of those received, `process.cpuUsage()`. */
export function processProbe(server: { readonly pendingRequests: number }, received: () => number): ThreadProbe {
  return {
    inFlight: () => server.pendingRequests,
    received,
    cpuMs: () => {
      const { user, system } = process.cpuUsage();
      return (user + system) / 1000;
    },
    now: () => performance.now(),
  };
}
