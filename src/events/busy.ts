/**
 * Whether requests are waiting for the process's one JavaScript thread: the relay's `busy` (relay.ts),
 * which keeps it to a small share of the thread while they are.
 *
 * Requests in flight at the moment it asks are not enough to tell. A claim answered from memory is
 * answered within the turn of the loop it arrived in, and the relay runs between turns: during a
 * stampede of such claims it found none in flight at 18–37 % of its checks only (a count in a
 * temporary patch, `bun run bench --events --scenarios coupon`), ran at full speed the rest of the
 * time, and the service spent 43 → 63 µs of CPU per claim. So requests also count as waiting when,
 * over the last window, the process answered some and used nearly a whole CPU: it is saturated, and
 * whatever the relay takes, requests wait for. Neither alone: a relay catching up on its own fills
 * the CPU with no request to delay, and at moderate load requests arrive but the thread has room.
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
}

export function requestsWaiting(probe: ThreadProbe, options: BusyOptions = {}): () => boolean {
  const windowMs = options.windowMs ?? 100;
  const saturatedShare = options.saturatedShare ?? 0.8;
  let started = probe.now();
  let cpuAtStart = probe.cpuMs();
  let receivedAtStart = probe.received();
  let saturated = false;
  return () => {
    if (probe.inFlight() > 0) return true;
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

/** The probe of this process: Bun's server for requests, `process.cpuUsage()` for CPU. */
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
