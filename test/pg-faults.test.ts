/**
 * PostgreSQL going away under a running service (issue #12): every request that needs it answers 503
 * SERVICE_UNAVAILABLE with Retry-After, /ready 503, and the service works again by itself once the
 * server is back; a 2xx given before, during or after is never lost, and nothing is done twice.
 * A private cluster per test (initdb in a temporary directory, its own port), stopped, paused, limited
 * and started again; the service as its own process.
 */

import { afterEach, describe, expect, test } from "bun:test";
import net from "node:net";
import postgres from "postgres";
import { brokenInvariants } from "../load/invariants.ts";
import { Unavailable } from "../src/domain/errors.ts";
import { openPg } from "../src/store/pg/database.ts";
import { pgFault } from "../src/store/pg/faults.ts";
import { type Client, expectUnavailable, type Reply } from "./support/api.ts";
import {
  launchServe,
  type PrivatePostgres,
  privatePostgres,
  privateRedis,
  ready,
  type Served,
  until,
} from "./support/dependencies.ts";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function cluster(): Promise<PrivatePostgres> {
  const pg = await privatePostgres();
  cleanups.push(() => pg.close());
  return pg;
}

async function launch(env: Record<string, string>): Promise<Served> {
  const app = await launchServe(env);
  cleanups.push(() => app.proc.kill("SIGKILL"));
  return app;
}

function auditorOf(pg: PrivatePostgres): postgres.Sql {
  const auditor = postgres(pg.url, { max: 1, onnotice: () => {} });
  cleanups.push(() => auditor.end({ timeout: 1 }));
  return auditor;
}

interface Shop {
  product: { id: number };
  drop: { id: number };
  buyers: { id: number; client: Client }[];
}

/** A product (stock 1000 at 100 won), a drop of 10 and `count` buyers with 1,000,000 points each. */
async function shop(app: Served, count: number): Promise<Shop> {
  const product = await app.admin.product(100, 1000);
  const drop = await app.admin.coupon({ totalQuantity: 10 });
  const buyers = [];
  for (let i = 0; i < count; i++) {
    const { id } = await app.admin.user(`buyer${i}`, 1_000_000);
    buyers.push({ id, client: await app.as(id) });
  }
  return { product, drop, buyers };
}

describe.each(["atomic", "redis"] as const)("COUPON_STRATEGY=%s", (strategy) => {
  test("stopped: every route that needs PostgreSQL answers 503 with Retry-After, /ready 503, /health 200; started again: it all works without a restart", async () => {
    const pg = await cluster();
    const env: Record<string, string> = { DATABASE_URL: pg.url, COUPON_STRATEGY: strategy, PG_POOL_MAX: "4" };
    if (strategy === "redis") {
      const redis = await privateRedis();
      cleanups.push(() => redis.close());
      env.REDIS_URL = redis.url;
    }
    const app = await launch(env);
    const { product, drop, buyers } = await shop(app, 3);
    const [first, second, third] = buyers as [Shop["buyers"][0], Shop["buyers"][0], Shop["buyers"][0]];
    expect((await first.client.issue(first.id, drop.id)).status).toBe(201);
    expect((await first.client.order(first.id, [{ productId: product.id, quantity: 2 }])).status).toBe(201);

    await pg.stop("fast");
    const during = await Promise.all([
      app.anonymous.get(`/api/products/${product.id}`),
      app.anonymous.get(`/api/coupons/${drop.id}`),
      second.client.get(`/api/users/${second.id}`),
      second.client.issue(second.id, drop.id),
      second.client.order(second.id, [{ productId: product.id, quantity: 1 }]),
      second.client.post(`/api/users/${second.id}/points/charge`, { amount: 10 }),
      app.admin.post("/api/users", { name: "late" }),
    ]);
    for (const reply of during) expectUnavailable(reply);
    expect((await app.anonymous.get("/ready")).status).toBe(503);
    expect((await app.anonymous.get("/health")).status).toBe(200);

    await pg.start();
    await until(() => ready(app));
    expect((await second.client.issue(second.id, drop.id)).status).toBe(201);
    expect((await third.client.order(third.id, [{ productId: product.id, quantity: 3 }])).status).toBe(201);
    expect((await app.anonymous.get(`/api/products/${product.id}`)).body.stock).toBe(1000 - 2 - 3);
    expect((await app.anonymous.get(`/api/coupons/${drop.id}`)).body.issuedQuantity).toBe(2);
    expect(await brokenInvariants(auditorOf(pg), new Map([[product.id, 1000]]))).toEqual([]);
    expect(await app.stop()).toBe(0);
  });
});

test("a crash in the middle of a stream of orders: each answered 201 or 503; every 201 is kept; the 503s retried with their Idempotency-Key pay once", async () => {
  const pg = await cluster();
  const app = await launch({ DATABASE_URL: pg.url, PG_POOL_MAX: "4" });
  const { product, buyers } = await shop(app, 4);
  interface Attempt {
    buyer: Shop["buyers"][0];
    key: string;
    reply?: Reply;
  }
  const attempts: Attempt[] = [];
  const place = ({ buyer, key }: Attempt) =>
    buyer.client.order(buyer.id, [{ productId: product.id, quantity: 1 }], undefined, { "Idempotency-Key": key });

  // Eight callers place orders one after another, until each has been answered 503 after the crash,
  // which comes once 20 orders are committed.
  let crashed = false;
  const callers = Array.from({ length: 8 }, async (_, caller) => {
    for (let n = 0; ; n++) {
      const attempt: Attempt = { buyer: buyers[caller % buyers.length] as Shop["buyers"][0], key: `${caller}-${n}` };
      attempts.push(attempt);
      const seenCrash = crashed;
      attempt.reply = await place(attempt);
      if (seenCrash && attempt.reply.status !== 201) return;
    }
  });
  const watcher = auditorOf(pg);
  await until(async () => ((await watcher`SELECT count(*)::int AS n FROM orders`)[0]?.n ?? 0) >= 20);
  await watcher.end({ timeout: 1 });
  await pg.stop("immediate");
  crashed = true;
  await Promise.all(callers);
  const replies = attempts.map((attempt) => attempt.reply as Reply);
  expect([...new Set(replies.map((r) => r.status))].sort()).toEqual([201, 503]);
  for (const reply of replies) if (reply.status === 503) expectUnavailable(reply);

  await pg.start();
  await until(() => ready(app));
  const auditor = auditorOf(pg);
  const acknowledged = replies.filter((r) => r.status === 201).map((r) => r.body.id as number);
  const kept = await auditor`SELECT id FROM orders WHERE id IN ${auditor(acknowledged)}`;
  expect(kept.length).toBe(acknowledged.length);

  // Retried with the same key, a refused order is placed now, or replayed if it had in fact committed.
  const retried = await Promise.all(attempts.filter((attempt) => attempt.reply?.status === 503).map(place));
  expect(retried.filter((r) => r.status !== 201)).toEqual([]);
  const [{ orders, paid } = { orders: -1, paid: -1 }] = await auditor<{ orders: number; paid: number }[]>`
    SELECT count(*)::int AS orders, coalesce(sum(paid_amount), 0)::int AS paid FROM orders`;
  expect({ orders, paid }).toEqual({ orders: attempts.length, paid: attempts.length * 100 });
  expect(await brokenInvariants(auditor, new Map([[product.id, 1000]]))).toEqual([]);
  expect(await app.stop()).toBe(0);
});

test("after a crash with queries in flight, every connection of the pool works once the server is back (postgres.js patched: patches/postgres@3.4.9.patch), five crashes over", async () => {
  const pg = await cluster();
  const db = await openPg({ url: pg.url, schema: null, poolMax: 4, statementTimeoutMs: 5000 });
  cleanups.push(() => db.$client.end({ timeout: 1 }));
  for (let crash = 1; crash <= 5; crash++) {
    let sent = 0;
    let stop = false;
    const load = Array.from({ length: 8 }, async () => {
      while (!stop) {
        sent++;
        await db.$client`SELECT ${sent}::int AS n, pg_sleep(0.002)`.catch(() => {});
      }
    });
    await until(async () => sent >= 40);
    await pg.stop("immediate");
    stop = true;
    await Promise.all(load);
    await pg.start();
    const answers = await Promise.all(
      Array.from({ length: 40 }, () =>
        db.$client`SELECT 1 AS one`.then(
          () => "ok",
          (error: { code?: string; message?: string }) => `${error.code}: ${error.message}`,
        ),
      ),
    );
    expect({ crash, failed: answers.filter((answer) => answer !== "ok") }).toEqual({ crash, failed: [] });
  }
});

/** Settles with what `query` gave (its value, or its error's code), or "no answer" after `ms`. */
function answerWithin<T>(query: Promise<T>, ms: number): Promise<T | string> {
  return Promise.race([
    query.catch((error: { code?: string }) => `failed: ${error.code}`),
    Bun.sleep(ms).then(() => "no answer"),
  ]);
}

// The five crashes above fail this way only now and then (on a loaded machine, where a reset socket's
// 'error' and 'close' come a few milliseconds apart); here the two events are spaced on purpose.
test("a query handed to a connection between its socket's 'error' (a reset) and its 'close' fails at once, and the pool goes on working (postgres.js patched: it waited for ever, then stalled the pool)", async () => {
  const pg = await cluster();
  const { hostname, port } = new URL(pg.url);
  const sockets: net.Socket[] = [];
  // postgres.js takes a socket of our own (its README: `socket`), though its types leave the option out.
  const client = postgres(pg.url, {
    max: 1,
    onnotice: () => {},
    socket: () => {
      const socket = net.connect(Number(port), hostname);
      sockets.push(socket);
      return socket;
    },
  } as postgres.Options<Record<string, never>>);
  cleanups.push(() => client.end({ timeout: 1 }));
  expect([...(await client`SELECT 1 AS one`)]).toEqual([{ one: 1 }]);
  const socket = sockets[0] as net.Socket;

  const inFlight = answerWithin(client`SELECT pg_sleep(0.5)`, 5000);
  await Bun.sleep(20);
  socket.emit("error", Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }));
  const handedAfter = answerWithin(client`SELECT 2 AS two`, 5000);
  await Bun.sleep(20);
  socket.emit("close", true);
  socket.destroy();

  expect(await inFlight).toBe("failed: ECONNRESET");
  expect(await handedAfter).toBe("failed: CONNECTION_CLOSED");
  // A new socket; before the patch it took the query above as its own and answered nothing more.
  expect(
    await answerWithin(
      client`SELECT 3 AS three`.then(([row]) => row),
      5000,
    ),
  ).toEqual({ three: 3 });
  expect(
    await answerWithin(
      client`SELECT 4 AS four`.then(([row]) => row),
      5000,
    ),
  ).toEqual({ four: 4 });
  expect(sockets.length).toBe(2);
});

test("a server that takes connections and closes them at once, without an error (a TCP proxy with nothing behind it): each query fails at once (CONNECTION_CLOSED, a 503), one connection each, and none is opened unasked (postgres.js patched: it reconnected in a loop without a pause, the query waiting all along)", async () => {
  let accepted = 0;
  const proxy = net.createServer((socket) => {
    accepted++;
    socket.end();
  });
  await new Promise<void>((listening) => proxy.listen(0, "127.0.0.1", listening));
  cleanups.push(() => proxy.close());
  const { port } = proxy.address() as net.AddressInfo;
  const client = postgres(`postgres://postgres@127.0.0.1:${port}/postgres`, { max: 1, onnotice: () => {} });
  cleanups.push(() => client.end({ timeout: 1 }));
  for (let query = 1; query <= 3; query++) {
    expect(await answerWithin(client`SELECT 1 AS one`, 5000)).toBe("failed: CONNECTION_CLOSED");
  }
  await Bun.sleep(200);
  expect(accepted).toBe(3);
});

test("a server that takes connections but never answers them (postmaster stopped with SIGSTOP): 503 after the connect timeout, then it recovers", async () => {
  const pg = await cluster();
  const app = await launch({ DATABASE_URL: pg.url, PG_POOL_MAX: "4" });
  const { product } = await shop(app, 1);
  // Its open sessions would go on serving: end them, so that every request needs a new connection.
  await pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'flashcart'");
  pg.pause();
  expectUnavailable(await app.anonymous.get(`/api/products/${product.id}`));
  expect((await app.anonymous.get("/ready")).status).toBe(503);
  pg.resume();
  await until(() => ready(app));
  expect((await app.anonymous.get(`/api/products/${product.id}`)).status).toBe(200);
  expect(await app.stop()).toBe(0);
});

test("a server that stops answering on open connections (their backends stopped with SIGSTOP, as behind a network partition): 503 once the answer timeout has passed, not minutes later; answering again, it recovers", async () => {
  const pg = await cluster();
  // The answer timeout is the statement timeout and 2 s (database.ts): 3 s here.
  const app = await launch({ DATABASE_URL: pg.url, PG_POOL_MAX: "1", PG_STATEMENT_TIMEOUT_MS: "1000" });
  const { product } = await shop(app, 1);
  const backends = (await pg.psql("SELECT pid FROM pg_stat_activity WHERE application_name = 'flashcart'"))
    .split("\n")
    .filter((line) => line !== "")
    .map(Number);
  expect(backends.length).toBeGreaterThan(0);
  const resume = () => {
    for (const pid of backends) {
      try {
        process.kill(pid, "SIGCONT");
      } catch {
        // gone already: the connection was given up on, and the backend ended once it ran again
      }
    }
  };
  cleanups.push(resume);
  for (const pid of backends) process.kill(pid, "SIGSTOP");

  const asked = performance.now();
  const reply = await app.anonymous.get(`/api/products/${product.id}`);
  const waitedMs = performance.now() - asked;
  expectUnavailable(reply);
  // Without the answer timeout it got no answer at all: the query waited on the silent connection (until
  // TCP gives up, minutes), and the service's HTTP connection was closed after 20 s in the meantime.
  expect(waitedMs).toBeLessThan(15_000);

  resume();
  await until(() => ready(app));
  expect((await app.anonymous.get(`/api/products/${product.id}`)).status).toBe(200);
  expect(await app.stop()).toBe(0);
}, 60_000);

test("out of connections (53300, max_connections reached): the requests that get none answer 503, the others 200; with room again, all 200", async () => {
  const pg = await cluster();
  const app = await launch({ DATABASE_URL: pg.url, PG_POOL_MAX: "10" });
  const { product } = await shop(app, 1);
  const burst = async () => {
    const replies = await Promise.all(
      Array.from({ length: 40 }, () => app.anonymous.get(`/api/products/${product.id}`)),
    );
    for (const reply of replies) if (reply.status !== 200) expectUnavailable(reply);
    return new Set(replies.map((r) => r.status));
  };
  await pg.stop("fast");
  await pg.start({ max_connections: "3", superuser_reserved_connections: "0" });
  expect([...(await burst())].sort()).toEqual([200, 503]);

  await pg.stop("fast");
  await pg.start();
  await until(() => ready(app));
  expect([...(await burst())]).toEqual([200]);
  expect(await app.stop()).toBe(0);
});

test("the PostgreSQL errors that mean 'down or busy' become 503 (507 for a full disk); the rest are left as they are", () => {
  const withCode = (code: string) => Object.assign(new Error(code), { code });
  for (const code of [
    "ECONNREFUSED",
    "ECONNRESET",
    "CONNECT_TIMEOUT",
    "ANSWER_TIMEOUT",
    "CONNECTION_CLOSED",
    "CONNECTION_ENDED",
    "CONNECTION_DESTROYED",
    "57P01",
    "57P02",
    "57P03",
    "53300",
    "08006",
  ]) {
    const fault = pgFault(withCode(code));
    expect([code, fault instanceof Unavailable && fault.code]).toEqual([code, "SERVICE_UNAVAILABLE"]);
  }
  // drizzle wraps the driver's error: the cause decides.
  const wrapped = new Error("Failed query", { cause: withCode("57P01") });
  expect((pgFault(wrapped) as Unavailable).code).toBe("SERVICE_UNAVAILABLE");
  expect((pgFault(withCode("53100")) as Unavailable).code).toBe("STORAGE_FULL");
  for (const code of ["23505", "23514", "42P01", "22003"]) {
    const error = withCode(code);
    expect(pgFault(error)).toBe(error);
  }
});
