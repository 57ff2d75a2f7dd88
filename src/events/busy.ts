/**
 * Whether requests are waiting for the process's one JavaScript thread: the relay's `busy` (relay.ts),
 * which keeps it to a small share of the thread while they are.
 *
 * Waiting for the thread, not merely in flight. Requests in flight at the moment the relay asks tell
 * neither way: an order in flight is mostly waiting for its commit's fsync, with the thread free (at
 * 2,000 orders a second, half the machine, the relay counting those as busy kept the webhook to
 * 23,559 of 39,709 events in 20 s); and a claim answered from memory finishes within its own turn of
 * the loop, so during a stampede of them the relay found none in flight at most of its checks and ran
 * at full speed (service CPU per claim 43 → 63 µs). So: requests are waiting when, over the last
 * window, the process answered some and used nearly a whole CPU. Not when the CPU is full and no
 * request came (the relay catching up on its own), nor when requests come and the thread has room.
 */

export interface ThreadProbe {
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

/** The probe of this process: a count of the requests it received, `process.cpuUsage()` for CPU. */
export function processProbe(received: () => number): ThreadProbe {
  return {
    received,
    cpuMs: () => {
      const { user, system } = process.cpuUsage();
      return (user + system) / 1000;
    },
    now: () => performance.now(),
  };
}
