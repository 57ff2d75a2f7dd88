/**
 * The service as a user runs it: `bun start` (`bun src/main.ts serve`) as its own process, configured by the environment.
 */

import { Database } from "bun:sqlite";
import { afterEach, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { RedisClient } from "bun";
import postgres from "postgres";
import { brokenInvariants } from "../load/invariants.ts";
import { type ListeningProcess, type LogLine, spawnListening } from "../load/process.ts";
import { pgMigrations } from "../src/store/migrations.generated.ts";
import { redisPrefixOf } from "../src/store/pg/redis-gate.ts";
import { type Client, client } from "./support/api.ts";
import { backends, TEST_DATABASE_URL, tokenFor } from "./support/server.ts";

/** `bun start`: the one entry point, serve command. */
const serve = [process.execPath, resolve(import.meta.dir, "../src/main.ts"), "serve"];
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "flashcart-proc-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface Running {
  proc: ListeningProcess["proc"];
  url: string;
  /** The "flashcart listening" line, whole. */
  listening: LogLine | undefined;
  /** Messages logged before the server was listening. */
  logs: string[];
  /** A client with no token. */
  anonymous: Client;
  /** Its last lines of output since it listens. */
  tail(): string[];
}

/**
 * Runs `steps` within `boundMs`, under the test's own timeout; past it, fails with what each server
 * has said lately and whether it is still running, and which step was under way, instead of a bare
 * timeout. (A test of this shape timed out once in CI with no clue left.)
 */
async function withinBound<T>(
  boundMs: number,
  servers: () => readonly Running[],
  steps: (step: (name: string) => void) => Promise<T>,
): Promise<T> {
  let current = "starting";
  let timer: Timer | undefined;
  const overdue = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const states = servers().map(
        (server, i) =>
          `server ${i} (pid ${server.proc.pid}, ${server.proc.exitCode === null ? "running" : `exited ${server.proc.exitCode}`}):\n  ${server.tail().join("\n  ")}`,
      );
      reject(new Error(`still at "${current}" after ${boundMs} ms\n${states.join("\n")}`));
    }, boundMs);
  });
  try {
    return await Promise.race([steps((name) => (current = name)), overdue]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `bun run token` in `cwd` (default configuration) and returns the token it prints. */
function cliToken(cwd: string, args: string[]): string {
  const result = Bun.spawnSync([process.execPath, resolve(import.meta.dir, "../src/cli/token.ts"), ...args], {
    cwd,
    env: { ...process.env, JWT_SECRET: "" },
  });
  expect(result.exitCode).toBe(0);
  return result.stdout.toString().trim();
}

/** Signs tokens with the secret a server generated beside its database. */
function secretBeside(dbPath: string): Uint8Array {
  return new TextEncoder().encode(readFileSync(`${dbPath}.jwt-secret`, "utf8").trim());
}

/** Starts the server on a random port and waits for its "listening" log line. */
async function launch(cwd: string, env: Record<string, string> = {}): Promise<Running> {
  const { proc, url, logs, tail } = await spawnListening(serve, {
    cwd,
    env: { ...process.env, PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "info", JWT_SECRET: "", ...env },
  });
  cleanups.push(() => proc.kill("SIGKILL"));
  const listening = logs.find((line) => line.msg === "flashcart listening");
  return { proc, url, listening, logs: logs.map((line) => line.msg as string), anonymous: client(url), tail };
}

describe("bun start", () => {
  test("on a fresh directory: creates ./data/flashcart.db, migrates, serves, and stops cleanly on SIGTERM", async () => {
    const cwd = tempDir();
    const { proc, url, logs, listening, anonymous } = await launch(cwd);
    expect(logs).toEqual(["JWT_SECRET is not set: generated a secret for this database", "flashcart listening"]);
    expect(listening).toMatchObject({ database: "./data/flashcart.db", durability: "durable" });
    expect((await anonymous.get("/health")).body).toEqual({ status: "ok" });
    expect((await anonymous.get("/ready")).body).toEqual({ status: "ready" });

    // No JWT_SECRET: one was generated beside the database, readable by its owner only.
    const dbPath = join(cwd, "data", "flashcart.db");
    expect(existsSync(dbPath)).toBe(true);
    expect(statSync(`${dbPath}.jwt-secret`).mode & 0o777).toBe(0o600);
    // Tokens from `bun run token`, signed with that generated secret.
    const admin = client(url, cliToken(cwd, ["--admin", "--ttl", "10m"]));
    const user = await admin.user("first", 5000);
    const product = await admin.product(1200, 3);
    const buyer = client(url, cliToken(cwd, ["--user", String(user.id)]));
    expect((await buyer.order(user.id, [{ productId: product.id, quantity: 2 }])).status).toBe(201);
    expect((await anonymous.order(user.id, [{ productId: product.id, quantity: 1 }])).status).toBe(401);

    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);

    const db = new Database(dbPath, { readonly: true });
    expect(db.query("SELECT balance FROM users WHERE id = ?").get(user.id)).toEqual({ balance: 5000 - 2400 });
    expect(db.query("SELECT stock FROM products WHERE id = ?").get(product.id)).toEqual({ stock: 1 });
    db.close();
  });

  test("a bad variable stops start-up with a message naming it, exit 1, no stack trace", async () => {
    const proc = Bun.spawn(serve, {
      cwd: tempDir(),
      env: { ...process.env, PORT: "not-a-port" },
      stdout: "pipe",
      stderr: "pipe",
    });
    expect(await proc.exited).toBe(1);
    const stderr = await new Response(proc.stderr).text();
    expect(stderr).toContain("PORT:");
    expect(stderr).not.toMatch(/\n\s+at /);
  });
});

describe("SIGTERM under load", () => {
  test("every 2xx answered before the stop is in the database, and the process exits 0", async () => {
    const cwd = tempDir();
    const secret = randomBytes(24).toString("hex");
    const { proc, url } = await launch(cwd, { JWT_SECRET: secret, LOG_SAMPLE: "0" });
    const key = new TextEncoder().encode(secret);
    const admin = client(url, await tokenFor(key, "admin"));
    const product = await admin.product(10, 100_000);
    const buyers: { id: number; api: Client }[] = [];
    for (let i = 0; i < 50; i++) {
      const { id } = await admin.user(`b${i}`, 100_000);
      buyers.push({ id, api: client(url, await tokenFor(key, id)) });
    }

    // 2,000 orders in flight; SIGTERM lands after the first 100 answers.
    let answered = 0;
    let signalled = false;
    const attempts = Array.from({ length: 2000 }, (_, i) => {
      const buyer = buyers[i % buyers.length] as (typeof buyers)[0];
      return buyer.api
        .order(buyer.id, [{ productId: product.id, quantity: 1 }])
        .then((reply) => {
          if (++answered === 100 && !signalled) {
            signalled = true;
            proc.kill("SIGTERM");
          }
          return reply;
        })
        .catch(() => null); // refused or reset once the server stopped accepting
    });
    const replies = await Promise.all(attempts);
    expect(await proc.exited).toBe(0);
    expect(signalled).toBe(true);

    const paid = replies.filter((r) => r !== null && r.status === 201).map((r) => r?.body.id as number);
    expect(paid.length).toBeGreaterThanOrEqual(100);
    expect(replies.filter((r) => r !== null && r.status >= 500)).toEqual([]);
    const db = new Database(join(cwd, "data", "flashcart.db"), { readonly: true });
    const stored = new Set(
      (db.query("SELECT id FROM orders WHERE status = 'PAID'").all() as { id: number }[]).map((row) => row.id),
    );
    expect(paid.filter((id) => !stored.has(id))).toEqual([]);
    expect(await brokenInvariants(db, new Map([[product.id, 100_000]]))).toEqual([]);
    db.close();
  });
});

/** A raw TCP client: sends `request` as is and collects what comes back until the server closes. */
function rawConnection(url: string, request: string): { received: () => string; closed: Promise<void> } {
  const { hostname, port } = new URL(url);
  let received = "";
  const closed = new Promise<void>((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) }, () => socket.write(request));
    socket.on("data", (chunk) => {
      received += chunk.toString();
    });
    socket.on("close", () => resolve());
    socket.on("error", reject);
  });
  return { received: () => received, closed };
}

/** Resolves once `condition()` holds (checked every 10 ms). */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await Bun.sleep(10);
}

describe("SIGTERM with connections open", () => {
  test("idle, half-sent and unfinished requests: each connection is closed, the store is closed, exit 0", async () => {
    const cwd = tempDir();
    const secret = randomBytes(24).toString("hex");
    const { proc, url } = await launch(cwd, { JWT_SECRET: secret, LOG_SAMPLE: "0" });
    const admin = client(url, await tokenFor(new TextEncoder().encode(secret), "admin"));
    const user = await admin.user("kept", 5000);

    // Idle: a whole request answered, the connection kept alive.
    const idle = rawConnection(url, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    await until(() => idle.received().includes("\r\n\r\n"));
    // Half-sent: a request line and nothing more.
    const halfSent = rawConnection(url, "GET /health HTTP/1.1\r\n");
    // Unfinished: a whole header and part of the body it announces, which never comes.
    const unfinished = rawConnection(
      url,
      `POST /api/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${admin.token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"name":`,
    );
    await Bun.sleep(100); // let the server read what each sent

    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
    await Promise.all([idle.closed, halfSent.closed, unfinished.closed]);
    expect(halfSent.received()).toBe("");

    // The store was closed: the WAL was checkpointed into the database and removed.
    const dbPath = join(cwd, "data", "flashcart.db");
    expect(existsSync(`${dbPath}-wal`)).toBe(false);
    const db = new Database(dbPath, { readonly: true });
    expect(db.query("SELECT id, balance FROM users").all()).toEqual([{ id: user.id, balance: 5000 }]);
    db.close();
  });

  test("serve --workers 2 with a half-sent request: every worker stops, exit 0", async () => {
    const cwd = tempDir();
    const { proc, url } = await spawnListening([...serve, "--workers", "2"], {
      cwd,
      env: { ...process.env, PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "info", JWT_SECRET: "" },
    });
    cleanups.push(() => proc.kill("SIGKILL"));
    // One per worker, most likely (the kernel spreads connections): each holds a half-sent request.
    const halfSent = [1, 2, 3, 4].map(() => rawConnection(url, "GET /health HTTP/1.1\r\n"));
    await Bun.sleep(100);
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
    await Promise.all(halfSent.map((connection) => connection.closed));
  });
});

describe("several processes on one database file", () => {
  test("3 servers sharing a file issue exactly the supply and never one coupon twice", async () => {
    const cwd = tempDir();
    const env = { DATABASE_URL: `sqlite:${join(cwd, "shared.db")}` };
    // All three start at once: they must agree on one generated secret.
    const servers = await Promise.all([launch(cwd, env), launch(cwd, env), launch(cwd, env)]);
    const secret = secretBeside(join(cwd, "shared.db"));
    const admin = client((servers[0] as Running).url, await tokenFor(secret, "admin"));
    const coupon = await admin.coupon({ totalQuantity: 60 });
    const users: { id: number; token: string }[] = [];
    for (let i = 0; i < 200; i++) {
      const { id } = await admin.user(`u${i}`);
      users.push({ id, token: await tokenFor(secret, id) });
    }

    // Every user asks every server at once.
    const replies = await Promise.all(
      users.flatMap((user) => servers.map((server) => client(server.url, user.token).issue(user.id, coupon.id))),
    );

    const statuses = replies.map((r) => (r.status === 201 ? "201" : `${r.status} ${r.body?.code}`));
    expect(statuses.filter((s) => s === "201").length).toBe(60);
    expect(statuses.every((s) => s === "201" || s === "409 COUPON_SOLD_OUT" || s === "409 COUPON_ALREADY_ISSUED")).toBe(
      true,
    );
    for (const server of servers) server.proc.kill("SIGTERM");
    await Promise.all(servers.map((server) => server.proc.exited));

    const db = new Database(join(cwd, "shared.db"), { readonly: true });
    expect(db.query("SELECT issued_quantity AS n FROM coupons").get()).toEqual({ n: 60 });
    expect(db.query("SELECT count(*) AS n, count(DISTINCT user_id) AS users FROM user_coupons").get()).toEqual({
      n: 60,
      users: 60,
    });
    db.close();
  });
});

const pgStrategies = backends.filter((b) => b !== "sqlite").map((b) => b.slice("pg-".length));

describe.each(pgStrategies)("several processes on one PostgreSQL database, %s strategy", (strategy) => {
  test("3 servers started together migrate once and issue exactly the supply, never one coupon twice", async () => {
    const schema = `flashcart_proc_${process.pid}_${randomBytes(4).toString("hex")}`;
    const secret = randomBytes(24).toString("hex");
    const separator = TEST_DATABASE_URL.includes("?") ? "&" : "?";
    const env = {
      DATABASE_URL: `${TEST_DATABASE_URL}${separator}schema=${schema}`,
      JWT_SECRET: secret,
      COUPON_STRATEGY: strategy,
    };
    const auditor = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {}, connection: { search_path: schema } });
    try {
      let servers: Running[] = [];
      await withinBound(
        45_000,
        () => servers,
        async (step) => {
          step("launching three servers");
          servers = await Promise.all([launch(tempDir(), env), launch(tempDir(), env), launch(tempDir(), env)]);
          const key = new TextEncoder().encode(secret);
          const admin = client((servers[0] as Running).url, await tokenFor(key, "admin"));
          step("creating the drop and 200 users");
          const coupon = await admin.coupon({ totalQuantity: 60 });
          const users: { id: number; token: string }[] = [];
          for (let i = 0; i < 200; i++) {
            const { id } = await admin.user(`u${i}`);
            users.push({ id, token: await tokenFor(key, id) });
          }

          step("600 claims at once");
          const replies = await Promise.all(
            users.flatMap((user) => servers.map((server) => client(server.url, user.token).issue(user.id, coupon.id))),
          );

          const statuses = replies.map((r) => (r.status === 201 ? "201" : `${r.status} ${r.body?.code}`));
          expect(statuses.filter((s) => s === "201").length).toBe(60);
          expect(
            statuses.filter((s) => s !== "201" && s !== "409 COUPON_SOLD_OUT" && s !== "409 COUPON_ALREADY_ISSUED"),
          ).toEqual([]);
          step("stopping the servers (SIGTERM)");
          for (const server of servers) server.proc.kill("SIGTERM");
          expect(await Promise.all(servers.map((server) => server.proc.exited))).toEqual([0, 0, 0]);
        },
      );

      expect([
        ...(await auditor`SELECT count(*)::int AS migrations FROM ${auditor(schema)}.__drizzle_migrations`),
      ]).toEqual([{ migrations: pgMigrations.length }]);
      expect([...(await auditor`SELECT issued_quantity AS n FROM coupons`)]).toEqual([{ n: 60 }]);
      expect([
        ...(await auditor`SELECT count(*)::int AS n, count(DISTINCT user_id)::int AS users FROM user_coupons`),
      ]).toEqual([{ n: 60, users: 60 }]);
      expect(await brokenInvariants(auditor)).toEqual([]);
    } finally {
      const prefix = strategy === "redis" ? await redisPrefixOf(auditor).catch(() => null) : null;
      await auditor.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await auditor.end({ timeout: 5 });
      if (prefix !== null) {
        const redis = new RedisClient(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
        const keys = (await redis.send("KEYS", [`${prefix}*`])) as string[];
        if (keys.length > 0) await redis.send("DEL", keys);
        redis.close();
      }
    }
  });
});
