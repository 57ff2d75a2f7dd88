/**
 * A real flashcart server for tests: a real SQLite file in a fresh temporary directory, the real app,
 * listening on a random local port. Tests talk to it over HTTP and read the file directly to check
 * what was committed.
 */
import { Database } from "bun:sqlite";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApp } from "../../src/app.ts";
import { signToken, TokenVerifier } from "../../src/auth/tokens.ts";
import type { RateLimits } from "../../src/config.ts";
import type { Clock } from "../../src/domain/time.ts";
import { silentLogger } from "../../src/logger.ts";
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
  url: string;
  dbPath: string;
  clock: TestClock;
  /** A second, read-only connection to the same file, as an auditor would open it. */
  db: Database;
  /** The HS256 secret this server trusts. */
  secret: Uint8Array;
  /** A client carrying an admin token. */
  admin: Client;
  /** A client carrying user `userId`'s own token. */
  as(userId: number): Promise<Client>;
  /** A client with no token at all. */
  anonymous: Client;
  stop(): Promise<void>;
}

/** Rate limits are off unless a test asks for them: the races below are about the database, not the limiter. */
const noLimits: RateLimits = { windowMs: 10_000, couponClaims: 0, orders: 0 };

export function tokenFor(secret: Uint8Array, subject: number | "admin", ttlSeconds = 3600): Promise<string> {
  return subject === "admin"
    ? signToken(secret, { sub: "test-admin", role: "admin" }, ttlSeconds)
    : signToken(secret, { sub: String(subject), role: "user" }, ttlSeconds);
}

export async function startServer(options: { clock?: TestClock; rateLimits?: RateLimits } = {}): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), "flashcart-test-"));
  const dbPath = join(dir, "flashcart.db");
  const clock = options.clock ?? testClock();
  const store = new SqliteStore(openSqlite({ path: dbPath, synchronous: "NORMAL", busyTimeoutMs: 5000 }));
  const secret = new TextEncoder().encode(randomBytes(32).toString("hex"));
  const app = createApp({
    store,
    clock,
    logger: silentLogger,
    verifier: new TokenVerifier(secret),
    rateLimits: options.rateLimits ?? noLimits,
  });
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: app.fetch });
  const db = new Database(dbPath, { readonly: true });
  const url = `http://127.0.0.1:${server.port}`;
  return {
    url,
    dbPath,
    clock,
    db,
    secret,
    admin: client(url, await tokenFor(secret, "admin")),
    as: async (userId) => client(url, await tokenFor(secret, userId)),
    anonymous: client(url),
    async stop() {
      await server.stop(true);
      db.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
