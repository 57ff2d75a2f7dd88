/**
 * flashcart's own cost per request, without a network or a load generator: the app as `serve` builds
 * it (metrics, request ids, sampled logs, rate limits, validation, authentication all on), over a
 * real SQLite file in the durability class asked for, driven in-process through `app.fetch` with 100
 * requests in flight, so the group commit batches as it does under load.
 *
 *   bun load/profile.ts [--requests 20000] [--durability durable|relaxed] [--phase claim-win|claim-lose|order]
 *   bun --cpu-prof --cpu-prof-dir=prof load/profile.ts --phase claim-lose
 *   bun load/layers.ts prof/*.cpuprofile --from … --to …     (the window it printed)
 *
 * Phases: claim-win (every claim takes a coupon: distinct users, enough supply), claim-lose (every
 * claim meets a sold-out drop: the stampede's 409), order (one line, paid in points), and two floors
 * to tell the layers apart without a profiler: claim-lose-stub (the same losing claim through the
 * whole app, but the store answers SOLD_OUT at once: everything except the domain and the store) and
 * hello (a bare Hono app answering the same 409 on the same route: Request, routing and Response,
 * with none of flashcart's middleware). Each reports
 * CPU µs per request (process CPU time, so another process on the machine hardly moves it) and
 * wall-clock requests/s. With --phase, only that phase is measured (after the others' set-up), so a
 * CPU profile of the run is a profile of that phase.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Hono } from "hono";
import { createApp } from "../src/app.ts";
import { signToken, TokenVerifier } from "../src/auth/tokens.ts";
import { loadConfig } from "../src/config.ts";
import { refused } from "../src/domain/errors.ts";
import { systemClock } from "../src/domain/time.ts";
import { durabilityClasses, durabilitySettings } from "../src/durability.ts";
import { createLogger } from "../src/logger.ts";
import { createMetrics, instrumentStore } from "../src/observability/metrics.ts";
import { openStore } from "../src/store/index.ts";
import type { Store } from "../src/store/port.ts";

const phases = ["claim-win", "claim-lose", "order", "claim-lose-stub", "hello"] as const;
type Phase = (typeof phases)[number];
const IN_FLIGHT = 100;

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    requests: { type: "string", default: "20000" },
    durability: { type: "string", default: "durable" },
    phase: { type: "string" },
  },
});
const requests = Number(values.requests);
const durability = values.durability as (typeof durabilityClasses)[number];
if (!durabilityClasses.includes(durability)) throw new Error(`--durability: ${durabilityClasses.join(", ")}`);
const only = values.phase as Phase | undefined;
if (only !== undefined && !phases.includes(only)) throw new Error(`--phase: ${phases.join(", ")}`);

const dir = mkdtempSync(join(tmpdir(), "flashcart-profile-"));
const secret = crypto.getRandomValues(new Uint8Array(32));
const config = loadConfig({
  ...process.env,
  DATABASE_URL: `sqlite:${join(dir, "flashcart.db")}`,
  SQLITE_SYNCHRONOUS: durabilitySettings[durability].sqliteSynchronous,
  JWT_SECRET: Buffer.from(secret).toString("hex"),
  LOG_LEVEL: "warn",
});
const metrics = createMetrics();
const opened = await openStore(config);
const store = instrumentStore(opened, metrics);
const appOver = (over: Store) =>
  createApp({
    store: over,
    clock: systemClock,
    logger: createLogger(config.logLevel),
    verifier: new TokenVerifier(new TextEncoder().encode(Buffer.from(secret).toString("hex"))),
    rateLimits: config.rateLimit,
    metrics,
    logSample: config.logSample,
  });
const app = appOver(store);
// The floors (see the phases above): the same app over a store that refuses every claim at once, and
// a bare Hono app with the same route and answer.
const refusingStore: Store = Object.create(opened);
refusingStore.claimCoupon = async () => {
  throw refused.soldOut();
};
const apps: Record<Phase, { fetch: (request: Request) => Response | Promise<Response> }> = {
  "claim-win": app,
  "claim-lose": app,
  order: app,
  "claim-lose-stub": appOver(instrumentStore(refusingStore, metrics)),
  hello: new Hono().post("/api/coupons/:userId", (c) => c.json({ code: "SOLD_OUT" }, 409)),
};

try {
  const now = Date.now();
  const users: number[] = [];
  for (let i = 0; i < requests; i++) users.push((await store.createUser(`u${i}`, now)).id);
  await Promise.all(users.map((id) => store.chargePoints({ userId: id, amount: 1_000_000, now, idempotency: null })));
  const product = await store.createProduct({ name: "p", price: 100, stock: 10 * requests }, now);
  const coupon = (total: number) =>
    store.createCoupon(
      {
        name: "c",
        discountType: "FIXED",
        discountValue: 10,
        maxDiscount: null,
        minOrderAmount: 0,
        validDays: 30,
        totalQuantity: total,
        issueStartsAt: null,
        issueEndsAt: null,
      },
      now,
    );
  const plenty = await coupon(requests);
  const soldOut = await coupon(1);
  const warmUp = await coupon(requests);
  const key = new TextEncoder().encode(Buffer.from(secret).toString("hex"));
  const tokens = await Promise.all(users.map((id) => signToken(key, { sub: String(id), role: "user" }, 3600)));

  /** A POST as an HTTP client sends it (wrk, k6 and browsers all send Content-Length). */
  const post = (i: number, path: string, payload: unknown): Request => {
    const body = JSON.stringify(payload);
    const headers = {
      authorization: `Bearer ${tokens[i]}`,
      "content-type": "application/json",
      "content-length": String(Buffer.byteLength(body)),
    };
    return new Request(`http://flashcart${path}`, { method: "POST", headers, body });
  };
  const claim = (i: number, couponId: number) => post(i, `/api/coupons/${users[i]}`, { couponId });
  const request = (i: number, phase: Phase): Request =>
    phase === "claim-lose-stub" || phase === "hello"
      ? claim(i, soldOut.id)
      : phase === "order"
        ? post(i, "/api/orders", { userId: users[i], items: [{ productId: product.id, quantity: 1 }] })
        : claim(i, phase === "claim-win" ? plenty.id : soldOut.id);

  /** Sends `count` requests with IN_FLIGHT in flight; every status must be `expected`. */
  async function drive(
    count: number,
    make: (i: number) => Request,
    expected: number,
    target: (typeof apps)[Phase] = app,
  ): Promise<void> {
    let next = 0;
    const lane = async () => {
      while (next < count) {
        const i = next++;
        const response = await target.fetch(make(i));
        await response.arrayBuffer();
        if (response.status !== expected) throw new Error(`request ${i}: ${response.status}, expected ${expected}`);
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
  }

  // Warm-up, not measured: the JIT, the token cache, and the store's memory of users and drops.
  await drive(requests, (i) => request(i, "claim-win"), 201);
  await drive(1, (i) => request(i, "claim-win"), 409);
  const withWarmUpDrop = (i: number) => {
    const made = request(i, "claim-win");
    return new Request(made.url, {
      method: "POST",
      headers: made.headers,
      body: JSON.stringify({ couponId: warmUp.id }),
    });
  };
  await drive(Math.min(requests, 5000), withWarmUpDrop, 201);
  await drive(1, (i) => request(i, "claim-lose"), 201);

  console.log(`flashcart in-process, SQLite ${durability}, ${requests} requests per phase, ${IN_FLIGHT} in flight`);
  console.log("| phase | CPU µs/request | requests/s (wall) |");
  console.log("|---|---:|---:|");
  const expected: Record<Phase, number> = {
    "claim-win": 201,
    "claim-lose": 409,
    order: 201,
    "claim-lose-stub": 409,
    hello: 409,
  };
  const windows: string[] = [];
  for (const phase of phases) {
    if (only !== undefined && phase !== only) continue;
    // claim-win needs a fresh drop: the warm-up used the users' one claim on `plenty`.
    const target = phase === "claim-win" ? await coupon(requests) : null;
    const make = target === null ? (i: number) => request(i, phase) : (i: number) => claim(i, target.id);
    // The floors' own warm-up (the JIT), unmeasured.
    if (apps[phase] !== app) await drive(requests, make, expected[phase], apps[phase]);
    const cpu = process.cpuUsage();
    const started = performance.now();
    await drive(requests, make, expected[phase], apps[phase]);
    const ended = performance.now();
    const used = process.cpuUsage(cpu);
    const cpuUs = (used.user + used.system) / requests;
    console.log(`| ${phase} | ${cpuUs.toFixed(1)} | ${Math.round(requests / ((ended - started) / 1000))} |`);
    // For load/layers.ts --from --to: the phase's samples only, not the set-up's.
    const epochUs = (at: number) => Math.round((performance.timeOrigin + at) * 1000);
    windows.push(`${phase}: --from ${epochUs(started)} --to ${epochUs(ended)}`);
  }
  console.log(`\nprofile windows (for load/layers.ts):\n${windows.join("\n")}`);
} finally {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}
