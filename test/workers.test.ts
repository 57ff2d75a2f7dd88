/**
 * `flashcart serve --workers N`: a supervisor and N serving processes on one port, as a user runs it.
 */

import { Database } from "bun:sqlite";
import { afterEach, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { RedisClient } from "bun";
import { ConfigError, loadConfig } from "../src/config.ts";
import { type Client, client } from "./support/api.ts";
import { tokenFor } from "./support/server.ts";

const serve = [process.execPath, resolve(import.meta.dir, "../src/main.ts"), "serve"];
const REDIS_URL = process.env.REDIS_URL || "redis://127.0.0.1:6379";
const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

interface LogLine {
  msg: string;
  level: string;
  worker?: number;
  pid?: number;
  url?: string;
  path?: string;
  status?: number;
}

interface Supervised {
  proc: Bun.Subprocess<"ignore", "pipe", "pipe">;
  url: string;
  /** Every JSON line logged so far, by the supervisor and its workers (stdout is shared). */
  logs: LogLine[];
  secret: Uint8Array;
  dbPath: string;
}

/** Starts `serve --workers 2` on a fresh SQLite file and port, and waits for "flashcart listening". */
async function launch(env: Record<string, string> = {}): Promise<Supervised> {
  const dir = mkdtempSync(join(tmpdir(), "flashcart-workers-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const secret = randomBytes(24).toString("hex");
  const dbPath = join(dir, "shared.db");
  const proc = Bun.spawn([...serve, "--workers", "2"], {
    cwd: dir,
    env: {
      ...process.env,
      // PORT=0: the supervisor picks one free port for both workers.
      PORT: "0",
      HOST: "127.0.0.1",
      LOG_LEVEL: "info",
      DATABASE_URL: `sqlite:${dbPath}`,
      JWT_SECRET: secret,
      REDIS_URL: "",
      WORKERS: "",
      ...env,
    },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  cleanups.push(() => proc.kill("SIGKILL"));
  const logs: LogLine[] = [];
  let listening: (url: string) => void = () => {};
  const url = new Promise<string>((resolve) => {
    listening = resolve;
  });
  // Read every line for the whole run: the tests look at the workers' request lines too.
  void (async () => {
    let pending = "";
    for await (const chunk of proc.stdout.pipeThrough(new TextDecoderStream())) {
      pending += chunk;
      const lines = pending.split("\n");
      pending = lines.pop() as string;
      for (const line of lines) {
        if (!line.startsWith("{")) continue;
        const entry = JSON.parse(line) as LogLine;
        logs.push(entry);
        if (entry.msg === "flashcart listening" && entry.url !== undefined) listening(entry.url.replace(/\/$/, ""));
      }
    }
  })();
  const started = await Promise.race([url, proc.exited.then((code) => `exited with ${code}`)]);
  if (!started.startsWith("http"))
    throw new Error(
      `serve --workers 2 ${started}: ${await new Response(proc.stderr).text()}${logs.map((l) => JSON.stringify(l)).join("\n")}`,
    );
  return { proc, url: started, logs, secret: new TextEncoder().encode(secret), dbPath };
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Exits once every process is gone (a killed worker may take a moment to be reaped). */
async function gone(pids: number[]): Promise<boolean> {
  while (pids.some(isRunning)) await Bun.sleep(50);
  return true;
}

function workerPids(logs: LogLine[]): number[] {
  return logs.filter((line) => line.msg === "worker ready").map((line) => line.pid as number);
}

/** The workers that logged the `count` requests to `path` (waiting for their lines to be read). */
async function workersServing(logs: LogLine[], path: string, count: number): Promise<Set<number>> {
  const served = () => logs.filter((line) => line.msg === "request" && line.path === path);
  while (served().length < count) await Bun.sleep(20);
  return new Set(served().map((line) => line.worker ?? 0));
}

describe("WORKERS", () => {
  test("is a whole number from 1, defaults to 1, and shares rate limits only through an explicit REDIS_URL", () => {
    expect(loadConfig({}).workers).toBe(1);
    expect(loadConfig({ WORKERS: "4" }).workers).toBe(4);
    for (const bad of ["0", "-1", "two", "1.5", "129"]) expect(() => loadConfig({ WORKERS: bad })).toThrow(ConfigError);
    expect(() => loadConfig({ WORKERS: "2", DATABASE_URL: "sqlite::memory:" })).toThrow(/WORKERS/);

    expect(loadConfig({ WORKERS: "2" }).sharedRateLimits).toBeNull();
    expect(loadConfig({ REDIS_URL: "redis://cache:6379" }).sharedRateLimits).toBeNull();
    expect(loadConfig({ WORKERS: "2", REDIS_URL: "redis://cache:6379" }).sharedRateLimits).toEqual({
      redisUrl: "redis://cache:6379",
      prefix: "flashcart:rate-limit:",
    });
  });
});

describe("serve --workers 2", () => {
  test("two workers on one port share the drop exactly and a Redis-counted limit; SIGTERM stops them all, exit 0", async () => {
    const prefix = `flashcart-test:${process.pid}:${randomBytes(4).toString("hex")}:`;
    const redis = new RedisClient(REDIS_URL);
    cleanups.push(async () => {
      const keys = (await redis.send("KEYS", [`${prefix}*`])) as string[];
      if (keys.length > 0) await redis.send("DEL", keys);
      redis.close();
    });
    const { proc, url, logs, secret, dbPath } = await launch({
      REDIS_URL,
      RATE_LIMIT_REDIS_PREFIX: prefix,
      RATE_LIMIT_COUPON_CLAIMS: "5",
      RATE_LIMIT_WINDOW_MS: "3600000",
    });
    const pids = workerPids(logs);
    expect(new Set(pids).size).toBe(2);
    expect(pids).not.toContain(proc.pid);
    expect(logs.filter((line) => line.level === "warn")).toEqual([]);

    const admin = client(url, await tokenFor(secret, "admin"));
    const coupon = await admin.coupon({ totalQuantity: 40 });
    const users: { id: number; api: Client }[] = [];
    for (let i = 0; i < 120; i++) {
      const { id } = await admin.user(`u${i}`);
      users.push({ id, api: client(url, await tokenFor(secret, id)) });
    }

    // The stampede: every user at once, over as many connections, which the kernel spreads over both workers.
    const replies = await Promise.all(users.map((user) => user.api.issue(user.id, coupon.id)));
    const statuses = replies.map((r) => (r.status === 201 ? "201" : `${r.status} ${r.body?.code}`));
    expect(statuses.filter((s) => s === "201").length).toBe(40);
    expect(statuses.filter((s) => s !== "201" && s !== "409 COUPON_SOLD_OUT")).toEqual([]);
    const claimed = new Set<number>();
    for (const user of users) for (const w of await workersServing(logs, `/api/coupons/${user.id}`, 1)) claimed.add(w);
    expect(claimed).toEqual(new Set([1, 2]));

    // One caller, limit 5 per window, claims 10 at once over new connections, again until both workers
    // answered some (the kernel's spread is random): exactly 5 pass the limiter in all.
    const { id: callerId } = await admin.user("caller");
    const callerToken = await tokenFor(secret, callerId);
    const claim = () =>
      fetch(`${url}/api/coupons/${callerId}`, {
        method: "POST",
        keepalive: false,
        headers: { authorization: `Bearer ${callerToken}`, "content-type": "application/json" },
        body: JSON.stringify({ couponId: coupon.id }),
      }).then((reply) => reply.status);
    const burst: number[] = [];
    for (let round = 0; round < 10; round++) {
      burst.push(...(await Promise.all(Array.from({ length: 10 }, claim))));
      if ((await workersServing(logs, `/api/coupons/${callerId}`, burst.length)).size === 2) break;
    }
    expect(await workersServing(logs, `/api/coupons/${callerId}`, burst.length)).toEqual(new Set([1, 2]));
    // The drop is gone: the 5 let through are refused as sold out, the rest as rate limited.
    expect(burst.filter((status) => status !== 429)).toEqual([409, 409, 409, 409, 409]);
    expect(((await redis.send("KEYS", [`${prefix}*`])) as string[]).length).toBeGreaterThan(0);

    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
    expect(await gone(pids)).toBe(true);
    expect(logs.filter((line) => line.msg === "stopped" && line.worker !== undefined).length).toBe(2);

    const db = new Database(dbPath, { readonly: true });
    expect(db.query("SELECT issued_quantity AS n FROM coupons").get()).toEqual({ n: 40 });
    expect(db.query("SELECT count(*) AS n, count(DISTINCT user_id) AS users FROM user_coupons").get()).toEqual({
      n: 40,
      users: 40,
    });
    db.close();
  });

  test("without REDIS_URL: one warning that each worker counts alone; SIGINT stops them all, exit 0", async () => {
    const { proc, logs } = await launch();
    const warnings = logs.filter((line) => line.level === "warn").map((line) => line.msg);
    expect(warnings).toEqual(["rate limits are counted by each worker alone: set REDIS_URL to share them"]);
    const pids = workerPids(logs);
    proc.kill("SIGINT");
    expect(await proc.exited).toBe(0);
    expect(await gone(pids)).toBe(true);
  });

  test("Redis unreachable: claims are answered, not 500; a worker killed outright stops the rest, exit 1", async () => {
    // A port nothing listens on.
    const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const deadRedis = `redis://127.0.0.1:${probe.port}`;
    probe.stop(true);
    const { proc, url, logs, secret } = await launch({ REDIS_URL: deadRedis, RATE_LIMIT_COUPON_CLAIMS: "2" });
    const admin = client(url, await tokenFor(secret, "admin"));
    const coupon = await admin.coupon({ totalQuantity: 10 });
    const { id } = await admin.user("u");
    const user = client(url, await tokenFor(secret, id));
    const replies = await Promise.all(Array.from({ length: 6 }, () => user.issue(id, coupon.id)));
    // Failing open: nothing counted, so nothing refused as rate limited, and no 5xx.
    expect(replies.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409, 409]);
    expect(logs.some((line) => line.level === "warn" && /Redis/.test(line.msg))).toBe(true);

    const [first, second] = workerPids(logs) as [number, number];
    process.kill(first, "SIGKILL");
    expect(await proc.exited).toBe(1);
    expect(await gone([first, second])).toBe(true);
    expect(logs.find((line) => line.msg === "worker exited unexpectedly; stopping the others")).toMatchObject({
      pid: first,
      level: "error",
    });
  });
});
