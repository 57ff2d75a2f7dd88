/** The bench's own parts: its invariant checker must catch a corrupted database, and its report must say what ran. */
import { Database } from "bun:sqlite";
import { expect, test } from "bun:test";
import { drained, lastClaimOf, parseOptions } from "../load/bench.ts";
import { brokenInvariants } from "../load/invariants.ts";
import { type BenchRun, durabilityLegend, renderMarkdown, renderSvg, type ScenarioResult } from "../load/report.ts";
import { describeOnEveryBackend } from "./support/every-backend.ts";
import { startServer } from "./support/server.ts";

test("the invariant checker passes a healthy database and names every corruption", async () => {
  const server = await startServer();
  try {
    const admin = server.admin;
    const [a, b] = [await admin.user("a", 10_000), await admin.user("b", 10_000)];
    const product = await admin.product(1000, 10);
    const coupon = await admin.coupon({ totalQuantity: 5 });
    const held = (await admin.issue(a.id, coupon.id)).body.id;
    await admin.issue(b.id, coupon.id);
    const order = (await admin.order(a.id, [{ productId: product.id, quantity: 2 }], held)).body.id;
    const initial = new Map([[product.id, 10]]);
    expect(await brokenInvariants(server.db, initial)).toEqual([]);

    // Corrupt the file behind the service's back, in ways the schema's constraints alone allow.
    const writer = new Database(server.dbPath);
    writer.run("UPDATE coupons SET issued_quantity = issued_quantity + 1 WHERE id = ?", [coupon.id]);
    writer.run("UPDATE users SET balance = balance + 5 WHERE id = ?", [b.id]);
    writer.run("UPDATE products SET stock = stock + 1 WHERE id = ?", [product.id]);
    writer.run("UPDATE orders SET status = 'CANCELLED', cancelled_at = 1 WHERE id = ?", [order]);
    writer.close();

    expect((await brokenInvariants(server.db, initial)).sort()).toEqual(
      [
        `coupon ${coupon.id}: counter 3 != 2 rows`,
        `user ${b.id}: balance 10005 != history sum 10000`,
        `product ${product.id}: stock 9 + sold 0 != initial 10`,
        `user coupon ${held}: USED status disagrees with its orders`,
      ].sort(),
    );
  } finally {
    await server.stop();
  }
});

/** Run in this order: the durable pg-redis row comes after a relaxed one, and the report regroups them. */
const results: ScenarioResult[] = [
  {
    variant: "sqlite",
    durability: "durable",
    scenario: "coupon",
    kind: "coupon",
    connections: 100,
    thinkMs: 0,
    rps: 25_000,
    ofCeiling: 0.25,
    latencyMs: { p50: 3.5, p95: 6.25, p99: 9, max: 30 },
    serviceCpuUsPerRequest: 41.25,
    requests: 125_000,
    statuses: { "201": 10_000, "409": 115_000 },
    rejectionRate: 0.92,
    failureRate: 0,
    serverErrors: 0,
    invariants: [],
  },
  {
    variant: "sqlite",
    durability: "relaxed",
    scenario: "coupon",
    kind: "coupon",
    connections: 100,
    thinkMs: 0,
    rps: 27_000,
    ofCeiling: 0.27,
    latencyMs: { p50: 3.25, p95: 6, p99: 8.5, max: 29 },
    requests: 135_000,
    statuses: { "201": 10_000, "409": 125_000 },
    rejectionRate: 0.93,
    failureRate: 0,
    serverErrors: 0,
    invariants: [],
  },
  {
    variant: "pg-redis",
    durability: "durable",
    scenario: "breakpoint",
    kind: "coupon",
    connections: 3200,
    thinkMs: 0,
    rps: 20_000,
    ofCeiling: 0.2,
    latencyMs: { p50: 150, p95: 620, p99: 900, max: 2000 },
    requests: 100_000,
    statuses: { "201": 0, "409": 99_000, "500": 1000 },
    rejectionRate: 0.99,
    failureRate: 0.01,
    serverErrors: 1000,
    invariants: ["1000 responses were 5xx"],
  },
];

const run: BenchRun = {
  startedAt: "2026-11-24T12:00:00.000Z",
  tool: "wrk",
  toolVersion: "wrk 4.1.0",
  bunVersion: "1.4.5",
  cpus: 2,
  cpuModel: "Test CPU",
  commit: "abc1234",
  command: "bun run bench --quick",
  users: 20_000,
  ceilingRps: 100_000,
  durability: durabilityLegend(results),
  results,
};

test("the Markdown report gives the command, the tool, ratios to the ceiling and the verdicts", () => {
  const md = renderMarkdown(run);
  expect(md).toContain("`bun run bench --quick`");
  expect(md).toContain("wrk (wrk 4.1.0)");
  expect(md).toContain("**100000 req/s**");
  expect(md).toContain(
    "| durable | sqlite | coupon | 100 | – | 25000 | 25.0 % | – | 3.50 | 6.25 | 9.00 | 30.0 | 41.3 | 10000 | 115000 | 0.00 % | all hold |",
  );
  expect(md).toContain("**broken**: 1000 responses were 5xx");
  expect(md).toContain("Breakpoint (pg-redis, durable): at 3200 connections (p95 620 ms, failures 1.00 %).");
});

test("the Markdown report gives the hello-world's latency at each paced scenario's think time, when measured", () => {
  const paced = renderMarkdown({
    ...run,
    paceFloors: [
      { thinkMs: 200, latencyMs: { p50: 0.07, p95: 0.2, p99: 0.31 } },
      { thinkMs: 950, latencyMs: { p50: 0.09, p95: 0.25, p99: 0.4 } },
    ],
  });
  expect(paced).toContain("Latency floor at 200 ms think time");
  expect(paced).toContain("p50 0.07 ms, p95 0.20 ms, p99 0.31 ms.");
  expect(paced).toContain("Latency floor at 950 ms think time");
  expect(renderMarkdown(run)).not.toContain("Latency floor");
});

test("the Markdown report groups rows by durability class, names each class's settings and promise", () => {
  const md = renderMarkdown(run);
  expect(md).toContain("compare them within a class");
  const durable = md.indexOf("\n## durable: SQLite synchronous=FULL, PostgreSQL synchronous_commit=on\n");
  const relaxed = md.indexOf("\n## relaxed: SQLite synchronous=NORMAL, PostgreSQL synchronous_commit=off\n");
  const rowOf = (durability: string, variant: string) => md.indexOf(`| ${durability} | ${variant} |`);
  expect(durable).toBeGreaterThan(0);
  expect(relaxed).toBeGreaterThan(durable);
  // Both durable rows under the durable heading, the relaxed one under its own, whatever the run order.
  expect(rowOf("durable", "sqlite")).toBeGreaterThan(durable);
  expect(rowOf("durable", "pg-redis")).toBeGreaterThan(rowOf("durable", "sqlite"));
  expect(relaxed).toBeGreaterThan(rowOf("durable", "pg-redis"));
  expect(rowOf("relaxed", "sqlite")).toBeGreaterThan(relaxed);
  expect(md).toContain("The commit is flushed to disk (fsync) before the answer: a 2xx survives a power loss.");
  expect(md).toContain("A power loss may lose the last acknowledged commits, never corrupts the database.");
  // Every table row names its class.
  const rows = md.split("\n").filter((line) => /^\| (?!durability |---)/.test(line));
  expect(rows.map((line) => line.split(" | ")[0])).toEqual(["| durable", "| durable", "| relaxed"]);
});

test("a PostgreSQL coupon row shows its claims/s as a fraction of pgbench's tps for the same claim", () => {
  const base = results[0] as ScenarioResult;
  const measured: ScenarioResult = { ...base, variant: "pg-atomic", rps: 1000, postgres: { tps: 1250 } };
  const missing: ScenarioResult = { ...base, variant: "pg-optimistic", postgres: { missing: "pgbench not installed" } };
  const md = renderMarkdown({ ...run, results: [measured, missing] });
  expect(md).toContain("| of PostgreSQL |");
  expect(md).toContain("| durable | pg-atomic | coupon | 100 | – | 1000 | 25.0 % | 80.0 % of 1250 tps |");
  expect(md).toContain("| pgbench not installed |");
});

test("a run in one class shows only that class", () => {
  const durableOnly = results.filter((r) => r.durability === "durable");
  const md = renderMarkdown({ ...run, durability: durabilityLegend(durableOnly), results: durableOnly });
  expect(md).toContain("## durable:");
  expect(md).not.toContain("relaxed");
  expect(durabilityLegend(durableOnly)).toEqual({
    durable: {
      sqliteSynchronous: "FULL",
      pgSynchronousCommit: "on",
      promise: "the commit is flushed to disk (fsync) before the answer: a 2xx survives a power loss",
    },
  });
});

test("the SVG chart has one bar pair per phase and marks broken runs red", () => {
  const svg = renderSvg(run);
  expect(svg.startsWith("<svg")).toBe(true);
  expect(svg.match(/<rect /g)?.length).toBe(1 + 2 * run.results.length);
  expect(svg).toContain('fill="#c62828"');
  expect(svg).toContain("sqlite coupon @100 · durable");
  expect(svg).toContain("compare within a durability class");
  // A heading per class, each over its own rows.
  const at = (text: string) => svg.indexOf(`>${text}<`);
  expect(at("durable: SQLite synchronous=FULL, PostgreSQL synchronous_commit=on")).toBeGreaterThan(0);
  expect(at("pg-redis breakpoint @3200 · durable")).toBeGreaterThan(
    at("durable: SQLite synchronous=FULL, PostgreSQL synchronous_commit=on"),
  );
  expect(at("relaxed: SQLite synchronous=NORMAL, PostgreSQL synchronous_commit=off")).toBeGreaterThan(
    at("pg-redis breakpoint @3200 · durable"),
  );
  expect(at("sqlite coupon @100 · relaxed")).toBeGreaterThan(
    at("relaxed: SQLite synchronous=NORMAL, PostgreSQL synchronous_commit=off"),
  );
});

test("with --events the report sets each phase with the outbox on beside the same phase off, with their ratio", () => {
  const base = results[0] as ScenarioResult;
  const off: ScenarioResult = { ...base, scenario: "order", kind: "order", events: "off", rps: 10_000 };
  const on: ScenarioResult = {
    ...off,
    events: "on",
    rps: 9_400,
    latencyMs: { ...base.latencyMs, p95: 7.5 },
    relay: { written: 75_200, deliveredByEnd: { webhook: 40_000, nats: 75_200 }, drainMs: 3_250 },
  };
  const markdown = renderMarkdown({ ...run, results: [off, on] });
  expect(markdown).toContain("| durable | sqlite (events off) | order | 100 |");
  expect(markdown).toContain("| durable | sqlite (events on) | order | 100 |");
  expect(markdown).toContain(
    "| durable | sqlite | order | 10000 | 9400 | **0.94** | 6.25 / 7.50 | – | 75200 | 40000 / 75200 | 3.3 s |",
  );
});

test("with --events --rounds the report pairs off and on within each round and gives the median of their ratios", () => {
  const base = results[0] as ScenarioResult;
  const relay = { written: 1, deliveredByEnd: { webhook: 1, nats: 1 }, drainMs: 100 };
  const round = (n: number, off: number, on: number): ScenarioResult[] => [
    { ...base, scenario: "order", kind: "order", events: "off", rps: off, round: n },
    { ...base, scenario: "order", kind: "order", events: "on", rps: on, round: n, relay },
  ];
  // Paired across rounds (on of round 2 against off of round 1) these would read 1.50, 0.67, …
  const markdown = renderMarkdown({
    ...run,
    results: [...round(1, 10_000, 9_000), ...round(2, 15_000, 15_300), ...round(3, 12_000, 11_400)],
  });
  expect(markdown).toContain("| durable | sqlite (events on, round 2) | order | 100 |");
  expect(markdown).toContain("| durable | sqlite (round 1) | order | 10000 | 9000 | **0.90** |");
  expect(markdown).toContain("| durable | sqlite (round 2) | order | 15000 | 15300 | **1.02** |");
  expect(markdown).toContain("| durable | sqlite (round 3) | order | 12000 | 11400 | **0.95** |");
  expect(markdown).toContain("| durable | sqlite | order | 0.90, 1.02, 0.95 | **0.95** | – | – |");
});

test("with --events --rounds a claim phase also gives when its drop sold out, and the ratio of those times", () => {
  const base = results[0] as ScenarioResult;
  const relay = { written: 1, deliveredByEnd: { webhook: 1, nats: 1 }, drainMs: 100 };
  const round = (n: number, off: number, on: number): ScenarioResult[] => [
    { ...base, events: "off", rps: 5_000, round: n, soldOutMs: off },
    { ...base, events: "on", rps: 4_000, round: n, soldOutMs: on, relay },
  ];
  const markdown = renderMarkdown({
    ...run,
    results: [...round(1, 2_000, 2_500), ...round(2, 3_000, 3_000)],
  });
  expect(markdown).toContain(
    "| durable | sqlite (round 1) | coupon | 5000 | 4000 | **0.80** | 6.25 / 6.25 | 2.00 / 2.50 s |",
  );
  // The winners' rate on ÷ off is the sell-out time off ÷ on.
  expect(markdown).toContain("| durable | sqlite | coupon | 0.80, 0.80 | **0.80** | 0.80, 1.00 | 0.90 |");
});

describeOnEveryBackend(({ server, admin }) => {
  test("the bench reads when a drop sold out: its last claim's time, none while coupons are left", async () => {
    const [a, b] = [await admin.user("a", 0), await admin.user("b", 0)];
    const coupon = await admin.coupon({ totalQuantity: 2 });
    expect(await lastClaimOf(server.db, coupon.id)).toBeNull();
    await admin.issue(a.id, coupon.id);
    expect(await lastClaimOf(server.db, coupon.id)).toBeNull();
    await admin.issue(b.id, coupon.id);
    const row = await server.get("SELECT max(issued_at) AS last FROM user_coupons WHERE coupon_id = ?", coupon.id);
    expect(row?.last).toBeGreaterThan(0);
    expect(await lastClaimOf(server.db, coupon.id)).toBe(row?.last);
  });
});

test("--sinks picks the sinks of --events: both by default, one, or none (the outbox alone); others refused", () => {
  expect(parseOptions(["--events"]).sinks).toEqual(["webhook", "nats"]);
  expect(parseOptions(["--events", "--sinks", "webhook"]).sinks).toEqual(["webhook"]);
  expect(parseOptions(["--events", "--sinks", "none"]).sinks).toEqual([]);
  expect(() => parseOptions(["--events", "--sinks", "kafka"])).toThrow("--sinks");
});

test("the bench waits for each configured sink's gauge at 0: a gauge /metrics does not show yet is not caught up; with no sink, nothing to wait for", async () => {
  let scrapes = 0;
  // The webhook's gauge from the start, at 0; the NATS sink's only from the third scrape on.
  const metrics = Bun.serve({
    port: 0,
    fetch: () => {
      scrapes++;
      const lines = ['flashcart_events_oldest_undelivered_age_seconds{sink="webhook"} 0'];
      if (scrapes >= 3) lines.push('flashcart_events_oldest_undelivered_age_seconds{sink="nats"} 0');
      return new Response(`${lines.join("\n")}\n`);
    },
  });
  try {
    const url = `http://127.0.0.1:${metrics.port}`;
    await drained(url, ["webhook", "nats"], 10_000);
    expect(scrapes).toBe(3);
    scrapes = 0;
    await drained(url, [], 10_000);
    expect(scrapes).toBe(1);
  } finally {
    metrics.stop(true);
  }
});
