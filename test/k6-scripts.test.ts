/**
 * The k6 scripts in load/k6 executed, not only type-checked (k6 cannot be installed here): each runs
 * for a few iterations under a shim of the k6 API (test/support/k6-shim) against a real server, under
 * every SCENARIO common.js knows, and must finish without an exception, a failed check, invalid
 * options or a crossed rate threshold. They run the way the bench runs them (seeded data, the -e values
 * of runK6 in load/tools.ts) and the way their headers run them (their own setup). The last suite
 * proves the shim fails where k6 would.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { runK6Script } from "./support/k6-shim/run.ts";
import { startServer, type TestServer } from "./support/server.ts";

/** The scenarios optionsFor() in load/k6/common.js defines (the unknown-SCENARIO test keeps this in step). */
const SCENARIOS = ["report", "ramp", "breakpoint", "capacity", "bench"];
const VUS = 2;
const ITERATIONS = 3;
/** The bench's seed (load/bench.ts), scaled down. */
const USERS = 20;
const PRODUCTS = 5;
const POINTS = 10_000;
const THINK_MS = { coupon: 200, order: 950, hello: 0 };

type Kind = keyof typeof THINK_MS;
const script = (kind: Kind) => resolve(import.meta.dir, "../load/k6", `${kind}.js`);

/** Seeded like the bench's database: users 1..USERS with points, products 1..PRODUCTS, nothing else. */
let server: TestServer;
/** Users only, as `bun run seed --users N` leaves it: the scripts' own setup creates the rest. */
let bare: TestServer;
/** The bench measures hello.js against a bare hello-world (load/hello.ts). */
let hello: Bun.Server<undefined>;
let secret: string;
const dir = mkdtempSync(join(tmpdir(), "flashcart-k6-shim-"));

/** The scripts address users 1..USERS and (seeded) products 1..PRODUCTS, as `bun run seed` numbers them. */
async function seeded(products: number): Promise<TestServer> {
  const started = await startServer();
  for (let i = 1; i <= USERS; i++) expect((await started.admin.user(`user${i}`, POINTS)).id).toBe(i);
  for (let i = 1; i <= products; i++) expect((await started.admin.product(100, 1_000_000, `product${i}`)).id).toBe(i);
  return started;
}

beforeAll(async () => {
  [server, bare] = await Promise.all([seeded(PRODUCTS), seeded(0)]);
  secret = new TextDecoder().decode(server.secret);
  hello = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("hello") });
});

afterAll(async () => {
  await hello?.stop(true);
  await server?.stop();
  await bare?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Every response of the iterations was counted by common.js's count(), and none was a failure. */
function expectCounted(run: Awaited<ReturnType<typeof runK6Script>>, accepted: string[]) {
  const counted = accepted.reduce((sum, name) => sum + (run.metrics[name]?.sum ?? 0), 0);
  expect(counted).toBe(VUS * ITERATIONS);
  for (const name of ["status_429", "status_5xx", "status_other"]) expect(run.metrics[name]).toBeUndefined();
}

describe("as the bench runs them (seeded, SEEDED=1, runK6's -e values)", () => {
  const cases = (["coupon", "order", "hello"] as const).flatMap((kind) => SCENARIOS.map((s) => [kind, s] as const));
  test.each(cases)("%s.js, SCENARIO=%s", async (kind, scenario) => {
    // Each measured run gets a full drop of its own, as the bench's seed gives it.
    const couponId = kind === "coupon" ? (await server.admin.coupon({ totalQuantity: USERS / 2 })).id : 0;
    const env = {
      BASE_URL: kind === "hello" ? hello.url.href.replace(/\/$/, "") : server.url,
      SCENARIO: scenario,
      VUS: "100",
      DURATION: "10s",
      THINK_MS: String(scenario === "report" ? THINK_MS[kind] : 0),
      USERS: String(kind === "hello" ? 0 : USERS),
      JWT_SECRET: secret,
      SEEDED: "1",
      COUPON_ID: String(couponId),
      PRODUCTS: String(kind === "hello" ? 0 : PRODUCTS),
    };
    const run = await runK6Script(script(kind), { env, vus: VUS, iterations: ITERATIONS });
    expect(run.problems).toEqual([]);
    expect(Object.keys(run.options.scenarios)).toEqual([scenario]);
    expectCounted(run, kind === "hello" ? ["status_2xx"] : ["status_2xx", "status_409"]);
    // SEEDED=1: no set-up requests, only the iterations'.
    expect(run.metrics.http_reqs?.sum).toBe(VUS * ITERATIONS);
  });
});

describe("as their headers run them (their own setup)", () => {
  const cases = (["coupon", "order"] as const).flatMap((kind) => SCENARIOS.map((s) => [kind, s] as const));
  test.each(cases)("%s.js, SCENARIO=%s", async (kind, scenario) => {
    const env = {
      BASE_URL: bare.url,
      JWT_SECRET: new TextDecoder().decode(bare.secret),
      USERS: String(USERS),
      SCENARIO: scenario,
    };
    const run = await runK6Script(script(kind), { env, vus: VUS, iterations: ITERATIONS });
    expect(run.problems).toEqual([]);
    expectCounted(run, ["status_2xx", "status_409"]);
    // Think time only where the scenario models people.
    expect(run.slept > 0).toBe(scenario === "report");
  });
});

describe("the shim fails where k6 would", () => {
  const runSource = async (source: string, env: Record<string, string> = {}) => {
    const file = join(dir, `${Bun.hash(source)}.js`);
    writeFileSync(file, source);
    return runK6Script(file, { env: { BASE_URL: hello.url.href, ...env }, vus: VUS, iterations: ITERATIONS });
  };

  test("a script that does everything right has no problems (the control for the cases below)", async () => {
    const run = await runSource(`
      import { check } from "k6";
      import http from "k6/http";
      export const options = { thresholds: { checks: ["rate==1"] } };
      export default function () { check(http.get(__ENV.BASE_URL), { "is 200": (r) => r.status === 200 }); }
    `);
    expect(run.problems).toEqual([]);
    expect(run.checks["is 200"]).toEqual({ passes: VUS * ITERATIONS, fails: 0 });
  });

  test.each([
    [
      "a failed check",
      `import { check } from "k6"; import http from "k6/http";
       export default function () { check(http.get(__ENV.BASE_URL), { "is 418": (r) => r.status === 418 }); }`,
      /check "is 418" failed 6 of 6 times/,
    ],
    [
      "an exception in an iteration",
      `export default function () { throw new Error("boom"); }`,
      /iteration 0: Error: boom/,
    ],
    [
      "an exception in setup",
      `export function setup() { throw new Error("no data"); } export default function () {}`,
      /setup: Error: no data/,
    ],
    [
      "an HTTP request in the init context",
      `import http from "k6/http"; http.get(__ENV.BASE_URL); export default function () {}`,
      /init context is not supported/,
    ],
    [
      "a metric declared in an iteration",
      `import { Counter } from "k6/metrics"; export default function () { new Counter("late").add(1); }`,
      /metrics must be declared in the init context/,
    ],
    [
      "an import k6 does not have",
      `import { readFileSync } from "node:fs"; export default function () { readFileSync("x"); }`,
      /imports node:fs/,
    ],
    ["a Node global", `export default function () { return process.env.HOME; }`, /process/],
    [
      "a threshold on a metric that does not exist",
      `export const options = { thresholds: { http_req_fialed: ["rate<0.01"] } }; export default function () {}`,
      /threshold on http_req_fialed: no such metric/,
    ],
    [
      "a crossed threshold",
      `import http from "k6/http";
       export const options = { thresholds: { http_req_failed: ["rate<0.01"] } };
       export default function () { http.get(__ENV.BASE_URL + "nowhere", { responseCallback: http.expectedStatuses(201) }); }`,
      /threshold http_req_failed: rate<0.01 crossed/,
    ],
    [
      "a scenario without its required fields",
      `export const options = { scenarios: { s: { executor: "constant-arrival-rate", rate: NaN } } };
       export default function () {}`,
      /constant-arrival-rate needs duration/,
    ],
  ])("%s", async (_, source, problem) => {
    const run = await runSource(source);
    expect(run.problems.join("\n")).toMatch(problem);
  });

  test("an unknown SCENARIO fails at init, naming exactly the scenarios these tests run", async () => {
    const run = await runK6Script(script("coupon"), { env: { SCENARIO: "nope" }, vus: VUS, iterations: ITERATIONS });
    expect(run.problems.join("\n")).toContain(`unknown SCENARIO nope: ${SCENARIOS.join(", ")}`);
  });

  test("without PRODUCTS (as runK6 used to run it) the seeded order script orders products that do not exist", async () => {
    const env = { BASE_URL: server.url, JWT_SECRET: secret, USERS: String(USERS), SCENARIO: "bench", SEEDED: "1" };
    const run = await runK6Script(script("order"), { env, vus: VUS, iterations: 20 });
    expect(run.problems.join("\n")).toMatch(/check "paid or a business rejection" failed/);
  });
});
