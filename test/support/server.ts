/**
 * A real flashcart server for tests: a real SQLite file in a fresh temporary directory, the real app,
 * listening on a random local port. Tests talk to it over HTTP and read the file directly to check
 * what was committed.
 */
import { Database } from "bun:sqlite";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApp } from "../../src/app.ts";
import type { Clock } from "../../src/domain/time.ts";
import { silentLogger } from "../../src/logger.ts";
import { openSqlite } from "../../src/store/sqlite/database.ts";
import { SqliteStore } from "../../src/store/sqlite/store.ts";

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
  stop(): Promise<void>;
}

export async function startServer(options: { clock?: TestClock } = {}): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), "flashcart-test-"));
  const dbPath = join(dir, "flashcart.db");
  const clock = options.clock ?? testClock();
  const store = new SqliteStore(openSqlite({ path: dbPath, synchronous: "NORMAL", busyTimeoutMs: 5000 }));
  const app = createApp({ store, clock, logger: silentLogger });
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: app.fetch });
  const db = new Database(dbPath, { readonly: true });
  return {
    url: `http://127.0.0.1:${server.port}`,
    dbPath,
    clock,
    db,
    async stop() {
      await server.stop(true);
      db.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
