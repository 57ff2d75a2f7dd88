import type { Config } from "../config.ts";
import { Unavailable } from "../domain/errors.ts";
import { RedisLink } from "../redis-link.ts";
import { openPg } from "./pg/database.ts";
import { redisPrefixOf } from "./pg/redis-gate.ts";
import { PgStore } from "./pg/store.ts";
import type { Store } from "./port.ts";
import { openSqlite } from "./sqlite/database.ts";
import { SqliteStore } from "./sqlite/store.ts";

export type { Store } from "./port.ts";

/** `DATABASE_URL` is the single switch between backends; both are migrated when opened. */
export async function openStore(
  config: Pick<Config, "database" | "sqlite" | "pg" | "redisTimeoutMs" | "events">,
): Promise<Store> {
  const events = config.events.recording;
  const { database } = config;
  if (database.kind === "postgres") {
    const db = await openPg({
      url: database.url,
      schema: database.schema,
      poolMax: config.pg.poolMax,
      statementTimeoutMs: config.pg.statementTimeoutMs,
      connectTimeoutMs: config.pg.connectTimeoutMs,
      synchronousCommit: config.pg.synchronousCommit,
    });
    const { couponStrategy } = config.pg;
    if (couponStrategy !== "redis") return new PgStore(db, { couponStrategy, events });
    const redis = new RedisLink(config.pg.redisUrl, config.redisTimeoutMs);
    const store = new PgStore(db, {
      couponStrategy,
      events,
      redis,
      redisPrefix: await redisPrefixOf(db.$client),
    });
    // Every drop into Redis now rather than at its first claim. With Redis away the service starts all
    // the same: claims answer 503 until it is back, and each drop is loaded at its first claim then.
    await store.rebuildRedis().catch((error: unknown) => {
      if (!(error instanceof Unavailable)) throw error;
    });
    return store;
  }
  return new SqliteStore(
    openSqlite({
      path: database.path,
      synchronous: config.sqlite.synchronous,
      busyTimeoutMs: config.sqlite.busyTimeoutMs,
    }),
    // One bound for every wait on a lock held by another process: at start-up and for each write.
    { writeLockWaitMs: config.sqlite.busyTimeoutMs, events },
  );
}
