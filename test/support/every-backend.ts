/** Runs a suite once on every configured backend against one real server per backend (or per test). */
import { afterAll, afterEach, beforeAll, beforeEach, describe } from "bun:test";
import type { Client } from "./api.ts";
import { type Backend, backends, startServer, type TestServer } from "./server.ts";

export interface OnBackend {
  backend: Backend;
  /** The running server; usable inside tests and hooks (it starts in a beforeAll, or a beforeEach). */
  server: TestServer;
  /** `server.admin`, as lazily. */
  admin: Client;
}

/**
 * A stand-in that forwards to the object `current()` returns at the moment of use: a suite body runs
 * before its hooks, so it cannot hold the server itself, only a handle to whichever one is running.
 */
function whenStarted<T extends object>(current: () => T | undefined, what: string): T {
  return new Proxy({} as T, {
    get(_, key) {
      const target = current();
      if (target === undefined) throw new Error(`${what} used outside a test: the server is not running`);
      // Not bound: TestServer and Client are closures, and a bound function would hide the properties of
      // `server.db` on PostgreSQL (postgres.Sql is a function with methods).
      return Reflect.get(target, key);
    },
  });
}

/**
 * `describe("on <backend>")` for SQLite and, when TEST_DATABASE_URL is set, every PostgreSQL coupon
 * strategy, with a fresh server started before the suite (`serverPer: "test"`: before each test) and
 * stopped after it.
 */
export function describeOnEveryBackend(suite: (on: OnBackend) => void): void;
export function describeOnEveryBackend(options: { serverPer: "suite" | "test" }, suite: (on: OnBackend) => void): void;
export function describeOnEveryBackend(
  ...args: [(on: OnBackend) => void] | [{ serverPer: "suite" | "test" }, (on: OnBackend) => void]
): void {
  const [options, suite] = args.length === 1 ? [{ serverPer: "suite" }, args[0]] : args;
  describe.each(backends)("on %s", (backend) => {
    let running: TestServer | undefined;
    const start = async () => {
      running = await startServer({ backend });
    };
    const stop = async () => {
      await running?.stop();
      running = undefined;
    };
    if (options.serverPer === "test") {
      beforeEach(start);
      afterEach(stop);
    } else {
      beforeAll(start);
      afterAll(stop);
    }
    suite({
      backend,
      server: whenStarted(() => running, "server"),
      admin: whenStarted(() => running?.admin, "admin"),
    });
  });
}
