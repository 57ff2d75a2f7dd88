/**
 * A real flashcart server for tests: the real app listening on a random local port, on a real
 * database: a SQLite file in a fresh temporary directory, or a fresh schema of the PostgreSQL server
 * named by TEST_DATABASE_URL. Tests talk to it over HTTP and read the database directly to check what
 * was committed.
 */
import { Database } from "bun:sqlite";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RedisClient } from "bun";
import postgres from "postgres";
import { rowReader } from "../../load/rows.ts";
import { createApp } from "../../src/app.ts";
import { signToken, TokenVerifier } from "../../src/auth/tokens.ts";
import type { RateLimits } from "../../src/config.ts";
import type { Clock } from "../../src/domain/time.ts";
import { type Logger, silentLogger } from "../../src/logger.ts";
import { createMetrics, instrumentStore } from "../../src/observability/metrics.ts";
import { RedisLink } from "../../src/redis-link.ts";
import { type CouponStrategy, couponStrategies } from "../../src/store/pg/coupon-strategies.ts";
import { openPg } from "../../src/store/pg/database.ts";
import { redisPrefixOf } from "../../src/store/pg/redis-gate.ts";
import { PgStore } from "../../src/store/pg/store.ts";
import type { Store } from "../../src/store/port.ts";
import { openSqlite } from "../../src/store/sqlite/database.ts";
import { SqliteStore } from "../../src/store/sqlite/store.ts";
import { type Client, client } from "./api.ts";

export interface TestClock extends Clock {
  set(ms: number): void;
  advance(ms: number): void;
}

/** Starts at the real time and moves only when told to. */
export function testClock(start = Date.now()): TestClock {
  let current = start;
  return {
    now: () => current,
    set: (ms) => {
      current = ms;
    },
    advance: (ms) => {
      current += ms;
    },
  };
}

export interface TestServer {
  backend: Backend;
  url: string;
  /** The SQLite file ("" on PostgreSQL). */
  dbPath: string;
  clock: TestClock;
  /** A second connection to the same database, as an auditor would open it (read-only on SQLite). */
  db: Database | postgres.Sql;
  /** Rows of a query written with `?` placeholders, on either backend. */
  all(sql: string, ...params: unknown[]): Promise<Record<string, any>[]>;
  get(sql: string, ...params: unknown[]): Promise<Record<string, any> | undefined>;
  /** The HS256 secret this server trusts. */
  secret: Uint8Array;
  /** A client carrying an admin token. */
  admin: Client;
  /** A client carrying user `userId`'s own token. */
  as(userId: number): Promise<Client>;
  /** A client with no token at all. */
  anonymous: Client;
  /** The store itself (not timed), for what is no request: the outbox's relay and retention. */
  store: Store;
  stop(): Promise<void>;
}

/** Rate limits are off unless a test asks for them: the races below are about the database, not the limiter. */
const noLimits: RateLimits = { windowMs: 10_000, couponClaims: 0, orders: 0 };

export function tokenFor(secret: Uint8Array, subject: number | "admin", ttlSeconds = 3600): Promise<string> {
  return subject === "admin"
    ? signToken(secret, { sub: "test-admin", role: "admin" }, ttlSeconds)
    : signToken(secret, { sub: String(subject), role: "user" }, ttlSeconds);
}

export type Backend = "sqlite" | `pg-${CouponStrategy}`;

/**
 * The backends the shared suites run on: SQLite always; PostgreSQL with every coupon strategy when
 * TEST_DATABASE_URL names a server (.ci/run always sets it). The redis strategy uses TEST_REDIS_URL
 * (default redis://127.0.0.1:6379), under its database's own key prefix (flashcart:<database id>:).
 */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? "";
const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
export const backends: Backend[] =
  TEST_DATABASE_URL === "" ? ["sqlite"] : ["sqlite", ...couponStrategies.map((s) => `pg-${s}` as const)];
if (TEST_DATABASE_URL === "") {
  console.log("PostgreSQL suites not run: set TEST_DATABASE_URL=postgres://… to run every suite on PostgreSQL too.");
}

interface Database_ {
  store: Store;
  source: Database | postgres.Sql;
  dbPath: string;
  close(): Promise<void>;
}

/** Where a SQLite test database lives (a fresh temporary directory by default) and how long its writes wait for a lock held elsewhere. */
export interface SqliteTestOptions {
  dir?: string;
  writeLockWaitMs?: number;
}

async function openDatabase(backend: Backend, sqlite: SqliteTestOptions = {}, events = true): Promise<Database_> {
  if (backend !== "sqlite") {
    const couponStrategy = backend.slice("pg-".length) as CouponStrategy;
    const schema = `flashcart_test_${process.pid}_${randomBytes(4).toString("hex")}`;
    const db = await openPg({ url: TEST_DATABASE_URL, schema, poolMax: 20, statementTimeoutMs: 10_000 });
    const redisPrefix = await redisPrefixOf(db.$client);
    const redis = couponStrategy === "redis" ? new RedisLink(TEST_REDIS_URL) : undefined;
    const store = new PgStore(db, { couponStrategy, events, redis, redisPrefix });
    await store.rebuildRedis();
    const inspector = redis === undefined ? undefined : new RedisClient(TEST_REDIS_URL);
    const reader = postgres(TEST_DATABASE_URL, { max: 2, onnotice: () => {}, connection: { search_path: schema } });
    return {
      store,
      source: reader,
      dbPath: "",
      async close() {
        if (inspector !== undefined) {
          const keys = (await inspector.send("KEYS", [`${redisPrefix}*`])) as string[];
          if (keys.length > 0) await inspector.send("DEL", keys);
          inspector.close();
        }
        await store.close();
        await reader.unsafe(`DROP SCHEMA "${schema}" CASCADE`);
        await reader.end({ timeout: 5 });
      },
    };
  }
  const dir = mkdtempSync(join(sqlite.dir ?? tmpdir(), "flashcart-test-"));
  const dbPath = join(dir, "flashcart.db");
  const writeLockWaitMs = sqlite.writeLockWaitMs ?? 5000;
  const store = new SqliteStore(openSqlite({ path: dbPath, synchronous: "NORMAL", busyTimeoutMs: 5000 }), {
    writeLockWaitMs,
    events,
  });
  const reader = new Database(dbPath, { readonly: true });
  return {
    store,
    source: reader,
    dbPath,
    async close() {
      reader.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function startServer(
  options: {
    clock?: TestClock;
    rateLimits?: RateLimits;
    backend?: Backend;
    sqlite?: SqliteTestOptions;
    /** Silent unless a test wants to see what was logged. */
    logger?: Logger;
    /** Whether writes record events (EVENTS); on unless a test turns it off. */
    events?: boolean;
  } = {},
): Promise<TestServer> {
  const backend = options.backend ?? "sqlite";
  const clock = options.clock ?? testClock();
  const database = await openDatabase(backend, options.sqlite, options.events ?? true);
  const { store, source } = database;
  const secret = new TextEncoder().encode(randomBytes(32).toString("hex"));
  const metrics = createMetrics();
  const app = createApp({
    store: instrumentStore(store, metrics),
    metrics,
    logSample: 0,
    clock,
    logger: options.logger ?? silentLogger,
    verifier: new TokenVerifier(secret),
    rateLimits: options.rateLimits ?? noLimits,
  });
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: app.fetch });
  const url = `http://127.0.0.1:${server.port}`;
  const read = rowReader(source);
  const all = (sql: string, ...params: unknown[]) => read(sql, ...params) as Promise<Record<string, any>[]>;
  return {
    backend,
    url,
    dbPath: database.dbPath,
    clock,
    db: source,
    all,
    get: async (sql, ...params) => (await all(sql, ...params))[0],
    secret,
    admin: client(url, await tokenFor(secret, "admin")),
    as: async (userId) => client(url, await tokenFor(secret, userId)),
    anonymous: client(url),
    store,
    async stop() {
      await server.stop(true);
      await database.close();
    },
  };
}
