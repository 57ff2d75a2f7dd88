/**
 * Redis going away under a running service (issue #12): the redis coupon strategy answers 503 with
 * Retry-After while Redis is down or hung and works again once it is back, without a restart; the
 * shared rate limits fail open and count again; and Redis state belongs to one database.
 * A private redis-server per test, stopped, paused and started again; the service as its own process.
 */

import { afterEach, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RedisClient } from "bun";
import postgres from "postgres";
import { brokenInvariants } from "../load/invariants.ts";
import { type Client, expectProblem, expectUnavailable } from "./support/api.ts";
import { launchServe, privateRedis, ready, type Served, until } from "./support/dependencies.ts";
import { TEST_DATABASE_URL } from "./support/server.ts";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A fresh schema on the PostgreSQL server of TEST_DATABASE_URL, dropped after the test. */
function freshSchema(): { url: string; auditor: postgres.Sql } {
  const schema = `flashcart_faults_${process.pid}_${randomBytes(4).toString("hex")}`;
  const auditor = postgres(TEST_DATABASE_URL, { max: 2, onnotice: () => {}, connection: { search_path: schema } });
  cleanups.push(async () => {
    await auditor.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await auditor.end({ timeout: 5 });
  });
  const url = new URL(TEST_DATABASE_URL);
  url.searchParams.set("schema", schema);
  return { url: url.href, auditor };
}

async function launch(env: Record<string, string>): Promise<Served> {
  const app = await launchServe(env);
  cleanups.push(() => app.proc.kill("SIGKILL"));
  return app;
}

/** `count` users, each with a client carrying their own token. */
async function users(app: Served, count: number): Promise<{ id: number; client: Client }[]> {
  const made = [];
  for (let i = 0; i < count; i++) {
    const { id } = await app.admin.user(`u${i}`);
    made.push({ id, client: await app.as(id) });
  }
  return made;
}

describe.if(TEST_DATABASE_URL !== "")("COUPON_STRATEGY=redis while Redis goes away", () => {
  test("down: claims 503 with Retry-After and /ready 503, the rest serves; back and empty: claims work again without a restart, rebuilt from PostgreSQL, exact", async () => {
    const redis = await privateRedis();
    cleanups.push(() => redis.close());
    const db = freshSchema();
    const app = await launch({ DATABASE_URL: db.url, COUPON_STRATEGY: "redis", REDIS_URL: redis.url });
    const drop = await app.admin.coupon({ totalQuantity: 5 });
    const people = await users(app, 8);
    const claim = (i: number, couponId = drop.id) => {
      const { id, client } = people[i] as { id: number; client: Client };
      return client.issue(id, couponId);
    };
    expect([(await claim(0)).status, (await claim(1)).status]).toEqual([201, 201]);

    await redis.stop();
    for (const reply of await Promise.all([2, 3, 4, 5].map((i) => claim(i)))) expectUnavailable(reply);
    expect((await app.anonymous.get("/ready")).status).toBe(503);
    expect((await app.anonymous.get("/health")).status).toBe(200);
    // What needs only PostgreSQL goes on: reading a drop, creating one (committed: 201).
    expect((await app.anonymous.get(`/api/coupons/${drop.id}`)).body.issuedQuantity).toBe(2);
    const later = await app.admin.coupon({ totalQuantity: 2 });

    // Back, with nothing in it (no persistence): the same process claims again, from PostgreSQL's state.
    await redis.start();
    await until(() => ready(app));
    expectProblem(await claim(1), 409, "COUPON_ALREADY_ISSUED");
    const after = await Promise.all([2, 3, 4, 5, 6].map((i) => claim(i)));
    expect(after.map((r) => (r.status === 201 ? "201" : r.body.code)).sort()).toEqual([
      "201",
      "201",
      "201",
      "COUPON_SOLD_OUT",
      "COUPON_SOLD_OUT",
    ]);
    expect([(await claim(0, later.id)).status, (await claim(1, later.id)).status]).toEqual([201, 201]);
    expectProblem(await claim(2, later.id), 409, "COUPON_SOLD_OUT");

    const issued = await db.auditor<{ id: number; issued: number }[]>`
      SELECT id, issued_quantity AS issued FROM coupons ORDER BY id`;
    expect([...issued]).toEqual([
      { id: drop.id, issued: 5 },
      { id: later.id, issued: 2 },
    ]);
    expect(await brokenInvariants(db.auditor)).toEqual([]);
    expect(await app.stop()).toBe(0);
  });

  test("hung (SIGSTOP): claims 503 instead of waiting; resumed: the users refused meanwhile claim normally (what Redis ran for them unanswered is rebuilt away)", async () => {
    const redis = await privateRedis();
    cleanups.push(() => redis.close());
    const db = freshSchema();
    const app = await launch({ DATABASE_URL: db.url, COUPON_STRATEGY: "redis", REDIS_URL: redis.url });
    const drop = await app.admin.coupon({ totalQuantity: 3 });
    const people = await users(app, 5);
    const claim = (i: number) => {
      const { id, client } = people[i] as { id: number; client: Client };
      return client.issue(id, drop.id);
    };
    expect((await claim(0)).status).toBe(201);

    redis.pause();
    for (const reply of await Promise.all([1, 2, 3].map(claim))) expectUnavailable(reply);
    expect((await app.anonymous.get("/ready")).status).toBe(503);

    // Resumed, Redis runs the reservations it had buffered, whose answers nobody waits for any more.
    redis.resume();
    await until(() => ready(app));
    expect([(await claim(1)).status, (await claim(2)).status]).toEqual([201, 201]);
    expectProblem(await claim(3), 409, "COUPON_SOLD_OUT");
    expectProblem(await claim(1), 409, "COUPON_ALREADY_ISSUED");
    expect((await app.anonymous.get(`/api/coupons/${drop.id}`)).body.issuedQuantity).toBe(3);
    expect(await brokenInvariants(db.auditor)).toEqual([]);
    expect(await app.stop()).toBe(0);
  });

  test("two databases on one Redis, with the same schema name, keep apart; a reset database starts clean; creating a drop overwrites what Redis held for it", async () => {
    const redis = await privateRedis();
    cleanups.push(() => redis.close());
    const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
    cleanups.push(() => admin.end({ timeout: 5 }));
    const databases = ["a", "b"].map(
      (side) => `flashcart_keys_${process.pid}_${randomBytes(3).toString("hex")}_${side}`,
    );
    const auditors: postgres.Sql[] = [];
    for (const name of databases) {
      await admin.unsafe(`CREATE DATABASE "${name}"`);
      cleanups.push(() => admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
      const url = new URL(TEST_DATABASE_URL);
      url.pathname = `/${name}`;
      const auditor = postgres(url.href, { max: 1, onnotice: () => {}, connection: { search_path: "shop" } });
      cleanups.push(() => auditor.end({ timeout: 5 }));
      auditors.push(auditor);
    }
    const urlOf = (name: string) => {
      const url = new URL(TEST_DATABASE_URL);
      url.pathname = `/${name}`;
      url.searchParams.set("schema", "shop");
      return url.href;
    };
    const start = (name: string) =>
      launch({ DATABASE_URL: urlOf(name), COUPON_STRATEGY: "redis", REDIS_URL: redis.url });
    const [nameA, nameB] = databases as [string, string];
    const [auditorA, auditorB] = auditors as [postgres.Sql, postgres.Sql];

    /** The first user and the first drop of a fresh database: ids 1 and 1 on both. */
    const firstClaim = async (app: Served) => {
      const [user] = await users(app, 1);
      const drop = await app.admin.coupon({ totalQuantity: 1 });
      expect([user?.id, drop.id]).toEqual([1, 1]);
      return (user as { client: Client }).client.issue(1, drop.id);
    };
    let a = await start(nameA);
    const b = await start(nameB);
    expect((await firstClaim(a)).status).toBe(201);
    expect((await firstClaim(b)).status).toBe(201);
    expect((await b.anonymous.get("/api/coupons/1")).body.issuedQuantity).toBe(1);

    // Each database's keys carry its own identity, made at its first migration.
    const identity = async (auditor: postgres.Sql) =>
      ((await auditor<{ id: string }[]>`SELECT id FROM database_identity`)[0] as { id: string }).id;
    const inspector = new RedisClient(redis.url);
    cleanups.push(() => inspector.close());
    const prefixes = async () =>
      [...new Set(((await inspector.send("KEYS", ["*"])) as string[]).map((key) => key.split(":coupon:")[0]))].sort();
    expect(await prefixes()).toEqual(
      [`flashcart:${await identity(auditorA)}`, `flashcart:${await identity(auditorB)}`].sort(),
    );

    // A reset: the same database and schema, emptied and migrated again, is a new database to Redis.
    expect(await a.stop()).toBe(0);
    await auditorA.unsafe("DROP SCHEMA shop CASCADE");
    a = await start(nameA);
    expect((await firstClaim(a)).status).toBe(201);

    // Whatever Redis holds under a new drop's keys (a database restored from a backup reuses ids) is
    // overwritten when the drop is created: here it says sold out, and user 1 holds it.
    const prefix = `flashcart:${await identity(auditorA)}:coupon:2:`;
    await inspector.send("SET", [`${prefix}remaining`, "0"]);
    await inspector.send("SADD", [`${prefix}users`, "1"]);
    const second = await a.admin.coupon({ totalQuantity: 1 });
    expect(second.id).toBe(2);
    expect((await (await a.as(1)).issue(1, second.id)).status).toBe(201);

    expect(await brokenInvariants(auditorA)).toEqual([]);
    expect(await brokenInvariants(auditorB)).toEqual([]);
    expect([await a.stop(), await b.stop()]).toEqual([0, 0]);
  });
});

test("shared rate limits (--workers 2): while Redis is hung or down, claims pass uncounted, never a 5xx; once it is back, the limit counts again", async () => {
  const redis = await privateRedis();
  cleanups.push(() => redis.close());
  const dir = mkdtempSync(join(tmpdir(), "flashcart-limits-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const app = await launch({
    DATABASE_URL: `sqlite:${join(dir, "shared.db")}`,
    WORKERS: "2",
    REDIS_URL: redis.url,
    RATE_LIMIT_COUPON_CLAIMS: "3",
  });
  const drop = await app.admin.coupon({ totalQuantity: 100 });
  const people = await users(app, 4);
  const burst = async (i: number) => {
    const { id, client } = people[i] as { id: number; client: Client };
    const replies = await Promise.all(Array.from({ length: 6 }, () => client.issue(id, drop.id)));
    return replies.map((r) => r.status).sort();
  };
  /** Bursts by user `i` until the limit refuses some (the workers reconnect on their own time). */
  const limitedAgain = async (i: number) => {
    await until(async () => (await burst(i)).includes(429));
  };
  await limitedAgain(0);

  redis.pause();
  expect(await burst(1)).toEqual([201, 409, 409, 409, 409, 409]);
  redis.resume();
  await limitedAgain(2);

  await redis.stop();
  const uncounted = await burst(3);
  expect(uncounted.filter((status) => status >= 500)).toEqual([]);
  await redis.start();
  await limitedAgain(3);
  expect(await app.stop()).toBe(0);
});
