/**
 * `flashcart serve`: configuration, store, server, signals. The app itself is built by `createApp` in
 * app.ts. (No default export here: Bun would start a second server from it.)
 */
import { createApp } from "../app.ts";
import { resolveJwtSecret } from "../auth/secret.ts";
import { TokenVerifier } from "../auth/tokens.ts";
import { ConfigError, loadConfig } from "../config.ts";
import { limits } from "../domain/limits.ts";
import { systemClock } from "../domain/time.ts";
import { createLogger } from "../logger.ts";
import { createMetrics, instrumentStore } from "../observability/metrics.ts";
import { openStore } from "../store/index.ts";

/**
 * Starts serving and returns once the server listens; SIGTERM or SIGINT stops it and exits. Takes no
 * arguments: the environment configures it (PORT, DATABASE_URL, …).
 */
export async function run(_argv: string[]): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(1);
    }
    throw error;
  }

  const logger = createLogger(config.logLevel);
  const metrics = config.metrics ? createMetrics() : null;
  let store: Awaited<ReturnType<typeof openStore>>;
  try {
    const opened = await openStore(config);
    store = metrics === null ? opened : instrumentStore(opened, metrics);
  } catch (error) {
    logger.error("cannot open the database", { error: error instanceof Error ? error.message : String(error) });
    process.exit(1);
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
  });

  const server = Bun.serve({
    port: config.port,
    hostname: config.host,
    fetch: app.fetch,
    // Bodies over the app's limit are refused by bodyLimit with a problem+json; this is the transport backstop.
    maxRequestBodySize: 1024 * 1024,
  });
  logger.info("flashcart listening", {
    url: server.url.href,
    database: config.database.kind === "sqlite" ? config.database.path : config.database.kind,
  });

  /** Stored idempotent responses are kept at least 24 h; older ones are removed hourly. */
  const purgeTimer = setInterval(
    () => {
      store
        .purgeIdempotencyKeys(systemClock.now() - limits.idempotencyRetentionMs)
        .then((removed) => removed > 0 && logger.info("purged idempotency keys", { removed }))
        .catch((error) => logger.error("idempotency purge failed", { error: String(error) }));
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
    }, 10_000);
    backstop.unref();
    clearInterval(purgeTimer);
    await server.stop(); // stop accepting, let in-flight requests finish
    await store.close();
    logger.info("stopped");
    process.exit(0);
  }
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}

if (import.meta.main) await run(process.argv.slice(2));
