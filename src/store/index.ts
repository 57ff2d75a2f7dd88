import { RedisClient } from "bun";
import type { Config } from "../config.ts";
import { openPg } from "./pg/database.ts";
import { PgStore } from "./pg/store.ts";
import type { Store } from "./port.ts";
import { openSqlite } from "./sqlite/database.ts";
import { SqliteStore } from "./sqlite/store.ts";

export type { Store } from "./port.ts";

/** `DATABASE_URL` is the single switch between backends; both are migrated when opened. */
export async function openStore(config: Pick<Config, "database" | "sqlite" | "pg" | "events">): Promise<Store> {
  const events = config.events.recording;
  const { database } = config;
  if (database.kind === "postgres") {
    const db = await openPg({
      url: database.url,
      schema: database.schema,
      poolMax: config.pg.poolMax,
      statementTimeoutMs: config.pg.statementTimeoutMs,
      synchronousCommit: config.pg.synchronousCommit,
    });
    const { couponStrategy } = config.pg;
    if (couponStrategy !== "redis") return new PgStore(db, { couponStrategy, events });
    const redis = new RedisClient(config.pg.redisUrl);
    const store = new PgStore(db, {
      couponStrategy,
      events,
      redis,
      redisPrefix: `flashcart:${database.schema ?? "public"}:`,
    });
    await store.rebuildRedis();
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
