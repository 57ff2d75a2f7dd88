/**
 * `flashcart serve [--workers N]`: configuration, store, server, signals. The app itself is built by
 * `createApp` in app.ts. (No default export here: Bun would start a second server from it.)
 *
 * One worker (the default): this process serves. Several: this process only supervises; it starts N
 * copies of itself marked as workers, which share the port (`reusePort`), each with its own store.
 */
import { parseArgs } from "node:util";
import { createApp } from "../app.ts";
import { resolveJwtSecret } from "../auth/secret.ts";
import { TokenVerifier } from "../auth/tokens.ts";
import { type Config, ConfigError, loadConfig } from "../config.ts";
import { Unavailable } from "../domain/errors.ts";
import { DAY_MS, limits } from "../domain/limits.ts";
import { systemClock } from "../domain/time.ts";
import { processProbe, requestsWaiting } from "../events/busy.ts";
import { NatsSink } from "../events/nats.ts";
import { Relay, type Sink } from "../events/relay.ts";
import { WebhookSink } from "../events/webhook.ts";
import { redisRateLimitStores } from "../http/auth.ts";
import { createLogger, type Logger } from "../logger.ts";
import { createMetrics, instrumentStore, observeOutbox, relayObserver } from "../observability/metrics.ts";
import { RedisLink } from "../redis-link.ts";
import { openStore } from "../store/index.ts";
import type { Outbox } from "../store/port.ts";

/** Set (to the worker's number, 1..N) in the environment of the processes a supervisor starts. */
const WORKER_MARKER = "FLASHCART_WORKER";

/**
 * After SIGTERM, how long the requests being handled get to finish before every connection still open
 * is closed: longer than a request waits for anything (a lock, a statement: 5 s by default).
 */
const DRAIN_MS = 5_000;

/**
 * The last resort, should closing the store hang: exit 1 this long after the signal. Past the drain
 * and past the longest a queued SQLite write may still wait for a lock held elsewhere
 * (SQLITE_BUSY_TIMEOUT_MS, up to 60 s): closing the store first lets those commit or be refused.
 */
function shutdownBackstopMs(config: Config): number {
  const writeWaitMs = config.database.kind === "sqlite" ? config.sqlite.busyTimeoutMs : 0;
  return DRAIN_MS + Math.max(5_000, writeWaitMs + 1_000);
}

/** How long the supervisor waits for its workers to stop before killing them: past their own backstop. */
function supervisorBackstopMs(config: Config): number {
  return shutdownBackstopMs(config) + 5_000;
}

/** What a worker tells its supervisor (over Bun's IPC channel) once it listens. */
interface WorkerReady {
  ready: string;
}

/**
 * Starts serving and returns once the server listens (several workers: once every one does); SIGTERM
 * or SIGINT stops it and exits. The environment configures it (PORT, DATABASE_URL, WORKERS, …);
 * `--workers N` overrides WORKERS.
 */
export async function run(argv: string[]): Promise<void> {
  let config: Config;
  try {
    const { values } = parseArgs({ args: argv, strict: true, options: { workers: { type: "string" } } });
    config = loadConfig(values.workers === undefined ? process.env : { ...process.env, WORKERS: values.workers });
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(1);
    }
    if (String((error as { code?: unknown }).code).startsWith("ERR_PARSE_ARGS")) {
      console.error(`${(error as Error).message}\n\nusage: flashcart serve [--workers N]`);
      process.exit(2);
    }
    throw error;
  }

  const logger = createLogger(config.logLevel);
  const worker = Number(process.env[WORKER_MARKER] ?? 0);
  if (worker > 0) return serve(config, withFields(logger, { worker, pid: process.pid }), worker);
  if (config.workers === 1) return serve(config, logger, null);
  return supervise(config, logger);
}

/** The logger, with `fields` on every line: a worker's lines say which worker wrote them. */
function withFields(logger: Logger, fields: Record<string, unknown>): Logger {
  return {
    debug: (msg, more) => logger.debug(msg, { ...fields, ...more }),
    info: (msg, more) => logger.info(msg, { ...fields, ...more }),
    warn: (msg, more) => logger.warn(msg, { ...fields, ...more }),
    error: (msg, more) => logger.error(msg, { ...fields, ...more }),
    enabled: (level) => logger.enabled(level),
  };
}

/** Serves in this process: alone (`worker` null) or as worker number `worker` of a supervisor. */
async function serve(config: Config, logger: Logger, worker: number | null): Promise<void> {
  const metrics = config.metrics ? createMetrics() : null;
  let store: Awaited<ReturnType<typeof openStore>>;
  const sinks = sinksOf(config);
  try {
    const opened = await openStore(config);
    store = metrics === null ? opened : instrumentStore(opened, metrics);
    if (metrics !== null) {
      observeOutbox(
        metrics,
        opened.outbox,
        sinks.map((sink) => sink.name),
        systemClock.now,
      );
    }
  } catch (error) {
    logger.error("cannot open the database", { error: error instanceof Error ? error.message : String(error) });
    process.exit(1);
  }

  let redis: RedisLink | null = null;
  if (config.sharedRateLimits !== null) {
    // While Redis is away a command fails within REDIS_TIMEOUT_MS and the limiter fails open (see
    // redisRateLimitStores); the link reconnects by itself.
    redis = new RedisLink(config.sharedRateLimits.redisUrl, config.redisTimeoutMs);
    await redis.send("PING", []).catch((error) =>
      logger.warn("cannot reach Redis for the shared rate limits: requests pass uncounted until it is back", {
        error: error instanceof Error ? String(error.cause ?? error.message) : String(error),
      }),
    );
  }
  const verifier = new TokenVerifier(resolveJwtSecret(config, logger));
  const app = createApp({
    store,
    clock: systemClock,
    logger,
    verifier,
    rateLimits: config.rateLimit,
    metrics,
    logSample: config.logSample,
    ...(redis === null || config.sharedRateLimits === null
      ? {}
      : { rateLimitStore: redisRateLimitStores(redis, config.sharedRateLimits.prefix, logger) }),
  });

  /** Requests received, for the relay's view of how busy the thread is (events/busy.ts). */
  let received = 0;
  const server = Bun.serve({
    port: config.port,
    hostname: config.host,
    // Workers bind the same port; the kernel spreads connections among them.
    reusePort: worker !== null,
    fetch: (request, bunServer) => {
      received++;
      return app.fetch(request, bunServer);
    },
    // Bodies over the app's limit are refused by bodyLimit with a problem+json; this is the transport backstop.
    maxRequestBodySize: 1024 * 1024,
  });
  const listening = {
    url: server.url.href,
    database: config.database.kind === "sqlite" ? config.database.path : config.database.kind,
    // Which promise a 2xx makes (src/durability.ts): durable = on disk before the answer.
    durability: config.durability,
  };
  // The relay pushes the outbox to the sinks from here (whichever process holds its lock), yielding to
  // requests while any are waiting (events/busy.ts says when they are).
  const relay =
    sinks.length === 0
      ? null
      : new Relay(store.outbox, sinks, {
          logger,
          observer: metrics === null ? null : relayObserver(metrics),
          now: systemClock.now,
          busy: requestsWaiting(processProbe(server, () => received)),
        });
  relay?.start();
  const retention = keepEvents(store.outbox, config, sinks, logger);

  if (worker === null) {
    logger.info("flashcart listening", listening);
  } else {
    // Not "… listening": the supervisor says that once every worker is ready.
    logger.info("worker ready", listening);
    process.send?.({ ready: server.url.href } satisfies WorkerReady);
  }

  /** Stored idempotent responses are kept at least 24 h; older ones are removed hourly. */
  const purgeTimer = setInterval(
    () => {
      store
        .purgeIdempotencyKeys(systemClock.now() - limits.idempotencyRetentionMs)
        .then((removed) => removed > 0 && logger.info("purged idempotency keys", { removed }))
        .catch((error) =>
          // A dependency's fault (the database busy, down or full) is not a bug: the next hour tries again.
          error instanceof Unavailable
            ? logger.warn("idempotency purge failed; trying again in an hour", { error: String(error) })
            : logger.error("idempotency purge failed", { error: String(error) }),
        );
    },
    60 * 60 * 1000,
  );
  purgeTimer.unref();

  let stopping = false;
  async function shutdown(signal: string): Promise<void> {
    if (stopping) return;
    stopping = true;
    logger.info("shutting down", { signal });
    const backstop = setTimeout(() => {
      logger.error("shutdown timed out; exiting");
      process.exit(1);
    }, shutdownBackstopMs(config));
    backstop.unref();
    clearInterval(purgeTimer);
    clearInterval(retention);
    // Stop accepting; Bun closes idle keep-alive connections at once. A graceful stop alone would also
    // wait for connections whose request never arrived whole (a half-sent header), until their idle
    // timeout: so wait for the requests being handled only, bounded, then close whatever is left.
    void server.stop();
    const unfinished = await requestsDrained(server, DRAIN_MS);
    if (unfinished > 0) logger.warn("requests still unfinished at the drain bound: closing them", { unfinished });
    await server.stop(true);
    await relay?.stop(); // records what the sinks acknowledged, then releases the relay's lock
    await store.close(); // commits what the group commit still holds, then closes the database
    redis?.close();
    logger.info("stopped");
    process.exit(0);
  }
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
  if (worker !== null) {
    // A supervisor killed outright (SIGKILL) cannot stop its workers: they notice it is gone (they
    // were handed to init) and stop themselves rather than serve on unsupervised.
    const supervisor = process.ppid;
    setInterval(() => process.ppid !== supervisor && void shutdown("supervisor gone"), 1000).unref();
  }
}

/** The sinks the configuration names, in a fixed order. */
function sinksOf(config: Config): Sink[] {
  const sinks: Sink[] = [];
  if (config.events.webhook !== null) sinks.push(new WebhookSink(config.events.webhook));
  if (config.events.nats !== null) sinks.push(new NatsSink(config.events.nats));
  return sinks;
}

/**
 * Retention: events older than EVENTS_RETENTION_DAYS are deleted hourly (and a minute after start),
 * but only those every configured sink has received; the rest wait for it, however old.
 */
function keepEvents(outbox: Outbox, config: Config, sinks: readonly Sink[], logger: Logger): Timer {
  const purge = () =>
    outbox
      .purgeEvents(
        systemClock.now() - config.events.retentionDays * DAY_MS,
        sinks.map((sink) => sink.name),
      )
      .then((removed) => removed > 0 && logger.info("purged events past their retention", { removed }))
      .catch((error) => logger.warn("event retention failed; trying again in an hour", { error: String(error) }));
  setTimeout(purge, 60_000).unref();
  const timer = setInterval(purge, 60 * 60 * 1000);
  timer.unref();
  return timer;
}

/**
 * Resolves once the server handles no request (Bun counts a request from its whole header until its
 * response is sent), or at `boundMs`, with how many it still handles then.
 */
async function requestsDrained(server: Bun.Server<undefined>, boundMs: number): Promise<number> {
  const deadline = Date.now() + boundMs;
  while (server.pendingRequests > 0 && Date.now() < deadline) await Bun.sleep(10);
  return server.pendingRequests;
}

/**
 * Starts `config.workers` workers and stops them together. The supervisor does not serve: it stays
 * small (no store, no app), so nothing but a signal or a worker's death makes it exit.
 *
 * A worker that exits unexpectedly is reported and every other worker is stopped (drained), then the
 * supervisor exits 1; it is not restarted. A worker dies for a reason the others likely share (the
 * database gone, a bug on some request, memory): the service manager that started flashcart (systemd,
 * a container runtime) already restarts with back-off, counts crashes and alerts, and a silently
 * half-sized service or a restart loop here would hide the fault from it.
 */
async function supervise(config: Config, logger: Logger): Promise<void> {
  let port: number;
  try {
    port = claimPort(config.host, config.port);
  } catch (error) {
    logger.error("cannot listen", {
      port: config.port,
      error: error instanceof Error ? error.message : String(error),
    });
    process.exit(1);
  }
  if (config.sharedRateLimits === null) {
    logger.warn("rate limits are counted by each worker alone: set REDIS_URL to share them", {
      workers: config.workers,
    });
  }

  // The same entry point again: `bun src/main.ts serve …` re-runs bun with the script (and bun's own
  // flags); a compiled binary is process.execPath itself, and its argv[1] is its embedded entry.
  const command = Bun.isStandaloneExecutable
    ? [process.execPath, ...process.argv.slice(2)]
    : [process.execPath, ...process.execArgv, ...process.argv.slice(1)];
  let announced: (() => void) | null = null;
  const allReady = new Promise<void>((resolve) => {
    announced = resolve;
  });
  const ready = new Set<number>();
  const workers = Array.from({ length: config.workers }, (_, i) => {
    const number = i + 1;
    return Bun.spawn(command, {
      env: { ...process.env, [WORKER_MARKER]: String(number), PORT: String(port) },
      stdio: ["ignore", "inherit", "inherit"],
      ipc(message: WorkerReady) {
        ready.add(number);
        if (ready.size === config.workers) {
          logger.info("flashcart listening", {
            url: message.ready,
            workers: config.workers,
            durability: config.durability,
          });
          announced?.();
        }
      },
    });
  });

  let stopping = false;
  let failed = false;
  function stopAll(signal: string): void {
    if (stopping) return;
    stopping = true;
    logger.info("shutting down", { signal, workers: config.workers });
    for (const proc of workers) if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
    const backstop = setTimeout(() => {
      logger.error("workers did not stop in time; killing them");
      for (const proc of workers) proc.kill("SIGKILL");
      process.exit(1);
    }, supervisorBackstopMs(config));
    backstop.unref();
  }
  workers.forEach((proc, i) => {
    void proc.exited.then((code) => {
      if (stopping) return;
      failed = true;
      logger.error("worker exited unexpectedly; stopping the others", {
        worker: i + 1,
        pid: proc.pid,
        code,
        signal: proc.signalCode,
      });
      stopAll("worker exited");
    });
  });
  void Promise.all(workers.map((proc) => proc.exited)).then((codes) => {
    logger.info("stopped", { codes });
    process.exit(failed || codes.some((code) => code !== 0) ? 1 : 0);
  });
  process.on("SIGTERM", () => stopAll("SIGTERM"));
  process.on("SIGINT", () => stopAll("SIGINT"));
  await allReady;
}

/**
 * Checks that the port is free by binding it once without `reusePort` (which also fails when another
 * flashcart's workers hold it, instead of silently joining them), and picks one for PORT=0, so every
 * worker binds the same port. Released at once; the workers bind it a moment later.
 */
function claimPort(hostname: string, port: number): number {
  const probe = Bun.listen({ hostname, port, socket: { data() {} } });
  const claimed = probe.port;
  probe.stop(true);
  return claimed;
}

if (import.meta.main) await run(process.argv.slice(2));
