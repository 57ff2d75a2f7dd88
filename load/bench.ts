/**
 * `bun run bench`: measures flashcart on this machine and proves it stayed exact.
 *
 * For each scenario it starts the real service on a fresh SQLite file, seeds it with the seed command,
 * drives load with k6 (when on PATH) or wrk, stops the service, then reads the database and checks every
 * invariant. Each variant runs in a durability class (src/durability.ts: durable by default, relaxed,
 * or both), which sets SQLITE_SYNCHRONOUS and PG_SYNCHRONOUS_COMMIT for its service; the report groups
 * the figures by class. A bare Bun.serve hello-world measured with the same tool and connections gives the
 * machine's ceiling; every throughput is also shown as a fraction of it. A broken invariant or any 5xx
 * fails the run (exit 1).
 *
 *   bun run bench                 every scenario (about 6 minutes)
 *   bun run bench --quick         a 30-second smoke run
 *   bun run bench --scenarios coupon,order --duration 20 --connections 200
 *   bun run bench --durability both   each variant durable, then relaxed
 *   bun run bench --events        each variant with the outbox and both sinks off, then on (the ratio)
 *   bun run bench --events --sinks webhook   the same with one sink (or none: the outbox alone)
 *   bun run bench --events --rounds 4   off and on in turn four times (on first in even rounds): a ratio
 *                                       per round and their median
 */
import { Database } from "bun:sqlite";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect as connectNats } from "@nats-io/transport-node";
import { RedisClient } from "bun";
import postgres from "postgres";
import { type Durability, durabilityClasses, durabilitySettings } from "../src/durability.ts";
import { type CouponStrategy, couponStrategies } from "../src/store/pg/coupon-strategies.ts";
import { redisPrefixOf } from "../src/store/pg/redis-gate.ts";
import { brokenEventInvariants, brokenInvariants } from "./invariants.ts";
import { postgresCeiling } from "./pgbench.ts";
import { cpuSecondsOf, type ListeningProcess, spawnListening } from "./process.ts";
import {
  type BenchRun,
  durabilityLegend,
  type PaceFloor,
  renderMarkdown,
  renderSvg,
  type ScenarioResult,
} from "./report.ts";
import { type RowSource, rowReader } from "./rows.ts";
import { type LoadDriver, type LoadResult, LoadToolMissing, loadDriver, versionOf } from "./tools.ts";

const root = resolve(import.meta.dir, "..");

export const SCENARIOS = {
  /** Coupon claims as fast as the connections go (closed loop, no think time). */
  coupon: { kind: "coupon", phases: "capacity" },
  /** Orders as fast as the connections go. */
  order: { kind: "order", phases: "capacity" },
  /** The report's test: 100 users, 60 s, think time for ≈0.2 s iterations. */
  "coupon-report": { kind: "coupon", phases: "report" },
  /** The report's order test: ≈0.95 s iterations. */
  "order-report": { kind: "order", phases: "report" },
  /** 10 → 50 → 100 connections. */
  ramp: { kind: "coupon", phases: "ramp" },
  /** Doubling connections until p95 passes 500 ms or failures pass 1 %. */
  breakpoint: { kind: "coupon", phases: "breakpoint" },
} as const;
type ScenarioName = keyof typeof SCENARIOS;

const THINK_MS = { coupon: 200, order: 950 } as const;
const PRODUCTS = 100;
const PRICE = 100;
const STOCK = 1_000_000;
const POINTS = 10_000;

interface Options {
  variants: Variant[];
  durability: Durability[];
  pgUrl: string;
  pgPool: number;
  workers: number;
  quick: boolean;
  duration: number;
  connections: number;
  users: number;
  scenarios: ScenarioName[];
  tool: "auto" | "wrk" | "k6";
  /** Where the service writes a CPU profile per variant and durability class (`bun --cpu-prof`); null: none. */
  cpuProfDir: string | null;
  /** Each variant twice: EVENTS=off, and EVENTS=on with `sinks` (a webhook receiver, NATS JetStream). */
  events: boolean;
  /** With --events, the sinks the outbox delivers to (--sinks): both by default, or one, or none. */
  sinks: EventSink[];
  natsUrl: string;
  /**
   * Each variant and class runs this many times in turn (with --events: off, on, off, on, …): two runs
   * here differ by up to ±0.08 in a ratio, so one pair of phases cannot tell a few per cent apart.
   */
  rounds: number;
}

/** With --events: how a variant's service runs the outbox. */
type EventsMode = "off" | "on";

const EVENT_SINKS = ["webhook", "nats"] as const;
type EventSink = (typeof EVENT_SINKS)[number];

export function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      quick: { type: "boolean", default: false },
      duration: { type: "string" },
      connections: { type: "string", default: "100" },
      users: { type: "string", default: "20000" },
      scenarios: { type: "string" },
      tool: { type: "string", default: "auto" },
      variants: { type: "string", default: "sqlite" },
      durability: { type: "string", default: "durable" },
      "pg-url": {
        type: "string",
        default: process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test",
      },
      "pg-pool": { type: "string", default: "20" },
      workers: { type: "string", default: "1" },
      "cpu-prof": { type: "string" },
      events: { type: "boolean", default: false },
      sinks: { type: "string", default: EVENT_SINKS.join(",") },
      "nats-url": { type: "string", default: process.env.NATS_URL ?? "nats://127.0.0.1:4222" },
      rounds: { type: "string", default: "1" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(
      `usage: bun run bench [--quick] [--variants ${VARIANTS.join(",")}] [--durability ${[...durabilityClasses, "both"].join("|")}] [--duration SECONDS] [--connections N] [--users N] [--scenarios ${Object.keys(SCENARIOS).join(",")}] [--tool auto|wrk|k6] [--pg-url postgres://…] [--pg-pool N] [--workers N] [--cpu-prof DIR] [--events [--sinks webhook,nats|webhook|nats|none] [--nats-url nats://…]] [--rounds N]`,
    );
    process.exit(0);
  }
  const quick = values.quick ?? false;
  const scenarios = (values.scenarios?.split(",") ??
    (quick ? ["coupon", "order", "coupon-report", "order-report"] : Object.keys(SCENARIOS))) as ScenarioName[];
  for (const name of scenarios) {
    if (!(name in SCENARIOS))
      throw new Error(`unknown scenario "${name}"; known: ${Object.keys(SCENARIOS).join(", ")}`);
  }
  const number = (text: string, name: string, min: number, max: number) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name}: expected an integer ${min}..${max}`);
    return n;
  };
  const variants = (values.variants as string).split(",") as Variant[];
  for (const variant of variants) {
    if (!VARIANTS.includes(variant)) throw new Error(`unknown variant "${variant}"; known: ${VARIANTS.join(", ")}`);
  }
  const durabilityChoice = values.durability as string;
  if (durabilityChoice !== "both" && !(durabilityClasses as readonly string[]).includes(durabilityChoice))
    throw new Error(`--durability: ${[...durabilityClasses, "both"].join(", ")}`);
  const durability = durabilityChoice === "both" ? [...durabilityClasses] : [durabilityChoice as Durability];
  const sinks = values.sinks === "none" ? [] : ((values.sinks as string).split(",") as EventSink[]);
  for (const sink of sinks) {
    if (!EVENT_SINKS.includes(sink)) throw new Error(`--sinks: ${EVENT_SINKS.join(",")}, one of them, or none`);
  }
  const tool = values.tool as Options["tool"];
  if (!["auto", "wrk", "k6"].includes(tool)) throw new Error("--tool: auto, wrk or k6");
  return {
    variants,
    durability,
    pgUrl: values["pg-url"] as string,
    pgPool: number(values["pg-pool"] as string, "pg-pool", 1, 1000),
    workers: number(values.workers as string, "workers", 1, 128),
    quick,
    duration: number(values.duration ?? (quick ? "5" : "30"), "duration", 1, 3600),
    connections: number(values.connections as string, "connections", 1, 10_000),
    users: number(values.users as string, "users", 100, 1_000_000),
    scenarios,
    tool,
    cpuProfDir: values["cpu-prof"] === undefined ? null : resolve(values["cpu-prof"]),
    events: values.events ?? false,
    sinks,
    natsUrl: values["nats-url"] as string,
    rounds: number(values.rounds as string, "rounds", 1, 20),
  };
}

async function stop(service: ListeningProcess): Promise<void> {
  service.proc.kill("SIGTERM");
  const code = await service.proc.exited;
  if (code !== 0) throw new Error(`the service exited with ${code} on SIGTERM`);
}

/** The phases a scenario runs: connections, think time and duration of each. */
function phasesOf(name: ScenarioName, options: Options): { connections: number; thinkMs: number; seconds: number }[] {
  const { kind, phases } = SCENARIOS[name];
  const d = options.duration;
  switch (phases) {
    case "capacity":
      return [{ connections: options.connections, thinkMs: 0, seconds: d }];
    case "report":
      return [{ connections: 100, thinkMs: THINK_MS[kind], seconds: options.quick ? d : 60 }];
    case "ramp":
      return [10, 50, 100].map((connections) => ({ connections, thinkMs: 0, seconds: Math.max(2, Math.round(d / 3)) }));
    case "breakpoint":
      return [100, 200, 400, 800, 1600, 3200, 6400, 12800]
        .filter((connections) => connections <= maxConnections())
        .map((connections) => ({
          connections,
          thinkMs: 0,
          seconds: Math.max(3, Math.round(d / 3)),
        }));
  }
}

/**
 * Server and load generator share this machine, each holding one descriptor per connection: stay
 * within half the open-file limit, or the client's own limit would pass for the server's breakpoint.
 */
function maxConnections(): number {
  const out = Bun.spawnSync(["sh", "-c", "ulimit -n"], { stdout: "pipe" }).stdout.toString().trim();
  const limit = out === "unlimited" ? 1_000_000 : Number(out) || 1024;
  return Math.floor((limit - 200) / 2);
}

const failed = (r: LoadResult) =>
  Object.entries(r.statuses)
    .filter(([status]) => !(Number(status) < 300 || Number(status) === 409))
    .reduce((sum, [, n]) => sum + n, 0) +
  r.socketErrors.connect +
  r.socketErrors.read +
  r.socketErrors.write +
  r.socketErrors.timeout;

type Variant = "sqlite" | `pg-${(typeof couponStrategies)[number]}`;
export const VARIANTS: readonly Variant[] = ["sqlite", ...couponStrategies.map((s) => `pg-${s}` as const)];

interface Deployment {
  env: Record<string, string>;
  /** With --events, the outbox and its sinks as this deployment runs them. */
  events: EventsMode | null;
  /** Reads the database for the invariant check. */
  invariants(): Promise<string[]>;
  /** When the drop's last coupon was taken (epoch ms); null while some are left. */
  soldOutAt(couponId: number): Promise<number | null>;
  /** PostgreSQL variants: their schema, and a connection on it. */
  postgres?: { schema: string; sql: postgres.Sql };
  cleanup(): Promise<void>;
}

/** Every drop holds half as many coupons as there are users: half the claims can win. */
const couponSupply = (options: Options) => Math.max(1, Math.floor(options.users / 2));

/**
 * When a drop's last coupon was taken (its latest issued_at, epoch ms, as the service stamped it), or
 * null while some are left. In a claim phase, the winners come first: the time the drop took says
 * what a winning claim costs, apart from the 409s answered after it sold out.
 */
export async function lastClaimOf(source: RowSource, couponId: number): Promise<number | null> {
  const [row] = await rowReader(source)(
    `SELECT count(*) AS held, max(uc.issued_at) AS last, (SELECT total_quantity FROM coupons WHERE id = ?) AS total
       FROM user_coupons uc WHERE uc.coupon_id = ?`,
    couponId,
    couponId,
  );
  return row !== undefined && Number(row.held) >= Number(row.total) && row.last !== null ? Number(row.last) : null;
}

const initialStock = () => new Map(Array.from({ length: PRODUCTS }, (_, i) => [i + 1, STOCK]));

/**
 * A fresh database for one variant in one durability class: a temporary SQLite file, or a schema of
 * its own on PostgreSQL.
 */
async function deploy(
  variant: Variant,
  durability: Durability,
  options: Options,
  secret: string,
  sinks: EventSinks | null,
): Promise<Deployment> {
  const settings = durabilitySettings[durability];
  const events: EventsMode | null = options.events ? (sinks === null ? "off" : "on") : null;
  const base = {
    JWT_SECRET: secret,
    // One request in a hundred is logged: enough to see the service work, little enough not to measure the logger.
    LOG_LEVEL: "info",
    LOG_SAMPLE: "0.01",
    PORT: "0",
    HOST: "127.0.0.1",
    // Both, whatever the backend: the class is never left to the caller's environment.
    SQLITE_SYNCHRONOUS: settings.sqliteSynchronous,
    PG_SYNCHRONOUS_COMMIT: settings.pgSynchronousCommit,
    WORKERS: String(options.workers),
    ...(events === "off" ? { EVENTS: "off" } : {}),
    ...(sinks === null ? {} : sinks.env),
  };
  if (variant === "sqlite") {
    const dir = mkdtempSync(join(tmpdir(), "flashcart-bench-"));
    /** A read of the file beside the running service, on a connection of its own, closed after. */
    const reading = async <T>(read: (db: Database) => Promise<T>): Promise<T> => {
      const db = new Database(join(dir, "bench.db"), { readonly: true });
      try {
        return await read(db);
      } finally {
        db.close();
      }
    };
    return {
      env: { ...base, DATABASE_URL: `sqlite:${join(dir, "bench.db")}` },
      events,
      async invariants() {
        return await reading(async (db) => {
          const broken = await brokenInvariants(db, initialStock());
          return events === "on" ? [...broken, ...(await brokenEventInvariants(db))] : broken;
        });
      },
      soldOutAt: (couponId) => reading((db) => lastClaimOf(db, couponId)),
      async cleanup() {
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const schema = `flashcart_bench_${process.pid}_${randomBytes(4).toString("hex")}`;
  const separator = options.pgUrl.includes("?") ? "&" : "?";
  const auditor = postgres(options.pgUrl, { max: 1, onnotice: () => {}, connection: { search_path: schema } });
  return {
    env: {
      ...base,
      DATABASE_URL: `${options.pgUrl}${separator}schema=${schema}`,
      COUPON_STRATEGY: variant.slice("pg-".length),
      PG_POOL_MAX: String(options.pgPool),
    },
    events,
    invariants: async () => {
      const broken = await brokenInvariants(auditor, initialStock());
      return events === "on" ? [...broken, ...(await brokenEventInvariants(auditor))] : broken;
    },
    soldOutAt: (couponId) => lastClaimOf(auditor, couponId),
    postgres: { schema, sql: auditor },
    async cleanup() {
      // The redis strategy's keys carry the database's identity (flashcart:<id>:), gone with the schema.
      const prefix = await redisPrefixOf(auditor).catch(() => null);
      await auditor.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await auditor.end({ timeout: 5 });
      if (prefix === null) return;
      const redis = new RedisClient(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
      const keys = (await redis.send("KEYS", [`${prefix}*`])) as string[];
      if (keys.length > 0) await redis.send("DEL", keys);
      redis.close();
    },
  };
}

/**
 * One variant in one durability class: a fresh database seeded with the seed command, the service started once, every
 * scenario in turn (each with a warm-up on a drop of its own, then measured on a full drop), the
 * invariants read after each scenario, the service stopped.
 */
async function runVariant(
  variant: Variant,
  durability: Durability,
  options: Options,
  driver: LoadDriver,
  secret: string,
  ceilingRps: number,
  sinks: EventSinks | null,
  round: number,
): Promise<ScenarioResult[]> {
  const deployment = await deploy(variant, durability, options, secret, sinks);
  const results: ScenarioResult[] = [];
  try {
    const seed = Bun.spawnSync(
      [
        process.execPath,
        "src/cli/seed.ts",
        ...["--users", String(options.users), "--points", String(POINTS), "--products", String(PRODUCTS)],
        // Two drops per scenario: 2k-1 is measured, 2k absorbs the warm-up, so each measured run starts full.
        ...["--price", String(PRICE), "--stock", String(STOCK), "--coupons", String(2 * options.scenarios.length)],
        ...["--coupon-quantity", String(couponSupply(options))],
      ],
      { cwd: root, env: { ...process.env, ...deployment.env }, stdout: "pipe", stderr: "pipe" },
    );
    if (seed.exitCode !== 0) throw new Error(`seed failed: ${seed.stderr.toString()}`);

    // With --cpu-prof, a profile of the service over every scenario it served (load/layers.ts reads it),
    // one per round with --rounds: one profile per phase cannot tell a few per cent from the noise.
    const profile =
      options.cpuProfDir === null
        ? []
        : [
            "--cpu-prof",
            `--cpu-prof-dir=${options.cpuProfDir}`,
            `--cpu-prof-name=${variant}-${durability}${deployment.events === null ? "" : `-events-${deployment.events}`}${options.rounds > 1 ? `-round${round}` : ""}.cpuprofile`,
          ];
    const service = await spawnListening([process.execPath, ...profile, "src/main.ts", "serve"], {
      cwd: root,
      env: { ...process.env, ...deployment.env },
      stderr: "inherit",
    });
    try {
      // The seed's charges are events too: let the relay deliver them before anything is measured.
      if (deployment.events === "on") await drained(service.url, options.sinks, 300_000);
      for (const [index, name] of options.scenarios.entries()) {
        const scenarioResults = await runScenario(
          name,
          variant,
          durability,
          service,
          options,
          driver,
          ceilingRps,
          { measured: 2 * index + 1, warmUp: 2 * index + 2 },
          deployment,
        );
        const { kind } = SCENARIOS[name];
        // Not with --events: pgbench's claims and orders bypass flashcart and write no events (they would
        // show as effects without one), and the comparison there is flashcart with and without its outbox.
        if (
          deployment.postgres !== undefined &&
          variant !== "sqlite" &&
          (name === "coupon" || name === "order") &&
          !options.events
        ) {
          // PostgreSQL's own ceiling for this variant's claim, or for an order, checked by the same invariants below.
          const ceiling = await postgresCeiling({
            url: options.pgUrl,
            ...deployment.postgres,
            of:
              kind === "coupon"
                ? { claim: variant.slice("pg-".length) as CouponStrategy, supply: couponSupply(options) }
                : { order: { products: PRODUCTS, price: PRICE } },
            users: options.users,
            clients: options.pgPool * options.workers,
            seconds: options.duration,
            synchronousCommit: durabilitySettings[durability].pgSynchronousCommit,
          });
          for (const r of scenarioResults) r.postgres = ceiling;
          console.log(
            `  ${variant} pgbench, the same ${kind === "coupon" ? "claim" : "order"}: ${"tps" in ceiling ? `${Math.round(ceiling.tps)} tps` : ceiling.missing}`,
          );
        }
        const broken = await deployment.invariants();
        const serverErrors = scenarioResults.reduce((sum, r) => sum + r.serverErrors, 0);
        if (serverErrors > 0) broken.push(`${serverErrors} responses were 5xx`);
        for (const r of scenarioResults) r.invariants = broken;
        console.log(
          broken.length === 0 ? "  invariants: all hold" : `  INVARIANTS BROKEN:\n    ${broken.join("\n    ")}`,
        );
        results.push(...scenarioResults);
      }
    } finally {
      await stop(service);
    }
  } finally {
    await deployment.cleanup();
  }
  return results;
}

async function runScenario(
  name: ScenarioName,
  variant: Variant,
  durability: Durability,
  service: ListeningProcess,
  options: Options,
  driver: LoadDriver,
  ceilingRps: number,
  coupon: { measured: number; warmUp: number },
  deployment: Pick<Deployment, "events" | "soldOutAt">,
): Promise<ScenarioResult[]> {
  const { events } = deployment;
  const { kind } = SCENARIOS[name];
  const results: ScenarioResult[] = [];
  // Warm-up, not measured: lets the JIT compile the hot paths before the first measured request.
  const warmUp = { connections: 50, thinkMs: 0, seconds: options.quick ? 1 : 3 };
  await driver.run({ url: service.url, kind, ...warmUp, couponId: coupon.warmUp });
  if (events === "on") await drained(service.url, options.sinks, 300_000);
  for (const phase of phasesOf(name, options)) {
    process.stdout.write(
      `  ${variant} (${durability}${events === null ? "" : `, events ${events}`}) ${name}: ${phase.connections} connections, ${phase.seconds} s${phase.thinkMs ? `, think ${phase.thinkMs} ms` : ""} … `,
    );
    const cpuBefore = cpuSecondsOf(service.proc.pid);
    const before = events === "on" ? await relayCounts(service.url) : null;
    const startedUs = epochUs();
    const load = await driver.run({ url: service.url, kind, ...phase, couponId: coupon.measured });
    const endedUs = epochUs();
    const cpuAfter = cpuSecondsOf(service.proc.pid);
    const atEnd = before === null ? null : await relayCounts(service.url);
    // Only the phase that took the drop's last coupon: the later phases of a ramp find it sold out.
    const soldOutAt = kind === "coupon" ? await deployment.soldOutAt(coupon.measured) : null;
    const soldOutMs =
      soldOutAt !== null && soldOutAt * 1000 >= startedUs && soldOutAt * 1000 <= endedUs
        ? soldOutAt - startedUs / 1000
        : null;
    const drainMs = before === null ? null : await drained(service.url, options.sinks, 300_000);
    const seconds = load.durationUs / 1e6;
    const failures = failed(load);
    const result: ScenarioResult = {
      variant,
      durability,
      scenario: name,
      kind,
      connections: phase.connections,
      thinkMs: phase.thinkMs,
      rps: load.requests / seconds,
      ofCeiling: load.requests / seconds / ceilingRps,
      latencyMs: {
        p50: load.latencyUs.p50 / 1000,
        p95: load.latencyUs.p95 / 1000,
        p99: load.latencyUs.p99 / 1000,
        max: load.latencyUs.max / 1000,
      },
      requests: load.requests,
      statuses: load.statuses,
      rejectionRate: (load.statuses["409"] ?? 0) / Math.max(1, load.requests),
      failureRate: failures / Math.max(1, load.requests),
      serverErrors: Object.entries(load.statuses)
        .filter(([status]) => Number(status) >= 500)
        .reduce((sum, [, n]) => sum + n, 0),
      invariants: [],
      ...(soldOutMs === null ? {} : { soldOutMs }),
      ...(events === null ? {} : { events }),
      ...(before === null || atEnd === null || drainMs === null
        ? {}
        : {
            relay: {
              written: atEnd.written - before.written,
              deliveredByEnd: {
                webhook: atEnd.webhook - before.webhook,
                nats: atEnd.nats - before.nats,
              },
              drainMs,
            },
          }),
    };
    if (cpuBefore !== null && cpuAfter !== null) {
      result.serviceCpuUsPerRequest = ((cpuAfter - cpuBefore) * 1e6) / Math.max(1, load.requests);
    }
    results.push(result);
    console.log(
      `${Math.round(result.rps)} req/s (${(result.ofCeiling * 100).toFixed(1)} % of ceiling), p95 ${result.latencyMs.p95.toFixed(2)} ms, p99 ${result.latencyMs.p99.toFixed(2)} ms${result.serviceCpuUsPerRequest === undefined ? "" : `, service CPU ${result.serviceCpuUsPerRequest.toFixed(1)} µs/request`}, failures ${(result.failureRate * 100).toFixed(2)} %${soldOutMs === null ? "" : `, sold out after ${(soldOutMs / 1000).toFixed(2)} s`}${result.relay === undefined ? "" : `; events ${result.relay.written}, delivered by the end: webhook ${result.relay.deliveredByEnd.webhook}, nats ${result.relay.deliveredByEnd.nats}; all delivered ${(result.relay.drainMs / 1000).toFixed(1)} s later`}`,
    );
    // The phase's span in the service's CPU profile: `bun load/layers.ts PROFILE --from … --to …`.
    if (options.cpuProfDir !== null) console.log(`    profile window: --from ${startedUs} --to ${endedUs}`);
    if (SCENARIOS[name].phases === "breakpoint" && (result.latencyMs.p95 > 500 || result.failureRate > 0.01)) break;
  }
  return results;
}

/** Now as the CPU profiles' timestamps count: µs since the epoch. */
function epochUs(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const secret = randomBytes(32).toString("hex");
  const work = mkdtempSync(join(tmpdir(), "flashcart-bench-"));
  try {
    const driver = await loadDriver(options.tool, { secret, users: options.users, products: PRODUCTS, workDir: work });
    console.log(
      `flashcart bench with ${driver.tool}: ${options.variants.join(", ")} × ${options.durability.join(", ")} × ${options.scenarios.join(", ")}`,
    );

    process.stdout.write(
      `  ceiling: hello-world, ${options.connections} connections, ${Math.min(options.duration, 10)} s … `,
    );
    const hello = await spawnListening([process.execPath, "load/hello.ts"], {
      cwd: root,
      env: { ...process.env, PORT: "0" },
      stderr: "inherit",
    });
    const ceilingLoad = await driver.run({
      url: hello.url,
      kind: "hello",
      connections: options.connections,
      thinkMs: 0,
      seconds: Math.min(options.duration, 10),
      couponId: 0,
    });
    const ceilingRps = ceilingLoad.requests / (ceilingLoad.durationUs / 1e6);
    console.log(`${Math.round(ceilingRps)} req/s`);
    // The paced scenarios' latency floor: the same hello-world at their pace. At a few hundred requests
    // a second every request meets an idle machine (a sleeping loop, cold caches), which costs more
    // than flashcart's own work; their p95 is read against this.
    const paceFloors: PaceFloor[] = [];
    for (const kind of new Set(
      options.scenarios.filter((n) => SCENARIOS[n].phases === "report").map((n) => SCENARIOS[n].kind),
    )) {
      const thinkMs = THINK_MS[kind];
      process.stdout.write(`  latency floor: hello-world, 100 connections, think ${thinkMs} ms … `);
      const paced = await driver.run({
        url: hello.url,
        kind: "hello",
        connections: 100,
        thinkMs,
        seconds: Math.min(options.duration, 10),
        couponId: 0,
      });
      const latencyMs = {
        p50: paced.latencyUs.p50 / 1000,
        p95: paced.latencyUs.p95 / 1000,
        p99: paced.latencyUs.p99 / 1000,
      };
      paceFloors.push({ thinkMs, latencyMs });
      console.log(
        `p50 ${latencyMs.p50.toFixed(2)} ms, p95 ${latencyMs.p95.toFixed(2)} ms, p99 ${latencyMs.p99.toFixed(2)} ms`,
      );
    }
    await stop(hello);

    const results: ScenarioResult[] = [];
    const sinks = options.events ? await startSinks(options.sinks, options.natsUrl) : null;
    try {
      // A variant's classes (and with --events, the outbox off and on) run back to back, so what
      // drifts on the machine over a run touches both alike. With --events the order turns round
      // every round (off then on, on then off, …): the machine drifted by up to a third within one
      // run here, and always measuring "on" second charged that drift to the outbox.
      for (const variant of options.variants) {
        for (const durability of options.durability) {
          for (let round = 1; round <= options.rounds; round++) {
            if (options.rounds > 1) console.log(`  round ${round} of ${options.rounds}`);
            const modes = sinks === null ? [null] : round % 2 === 1 ? [null, sinks] : [sinks, null];
            for (const withSinks of modes) {
              const measured = await runVariant(
                variant,
                durability,
                options,
                driver,
                secret,
                ceilingRps,
                withSinks,
                round,
              );
              results.push(...measured.map((r) => (options.rounds > 1 ? { ...r, round } : r)));
            }
          }
        }
      }
    } finally {
      await sinks?.stop();
    }

    const run: BenchRun = {
      startedAt: new Date().toISOString(),
      tool: driver.tool,
      toolVersion: driver.version,
      bunVersion: Bun.version,
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? "unknown",
      commit: versionOf(["git", "-C", root, "rev-parse", "--short", "HEAD"]),
      command: `bun run bench ${process.argv.slice(2).join(" ")}`.trim(),
      users: options.users,
      ceilingRps,
      paceFloors,
      durability: durabilityLegend(results),
      results,
    };
    const dir = join(root, "load", "results");
    mkdirSync(dir, { recursive: true });
    const stamp = run.startedAt.replaceAll(":", "-").replace(/\..*/, "");
    await Bun.write(join(dir, `${stamp}.json`), `${JSON.stringify(run, null, 2)}\n`);
    await Bun.write(join(dir, "latest.md"), renderMarkdown(run));
    await Bun.write(join(dir, "latest.svg"), renderSvg(run));
    console.log(`wrote load/results/${stamp}.json, load/results/latest.md and load/results/latest.svg`);
    if (results.some((r) => r.invariants.length > 0)) {
      console.error("bench FAILED: an invariant was broken");
      process.exit(1);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** The sinks of `--events`: a webhook receiver process and a JetStream stream of the bench's own (--sinks). */
interface EventSinks {
  env: Record<string, string>;
  stop(): Promise<void>;
}

async function startSinks(sinks: readonly EventSink[], natsUrl: string): Promise<EventSinks> {
  const receiver = sinks.includes("webhook")
    ? await spawnListening([process.execPath, "load/webhook-receiver.ts"], {
        cwd: root,
        env: { ...process.env, PORT: "0" },
        stderr: "inherit",
      })
    : null;
  const tag = `${process.pid}_${randomBytes(4).toString("hex")}`;
  const stream = `FLASHCART_BENCH_${tag}`;
  return {
    env: {
      ...(receiver === null
        ? {}
        : { WEBHOOK_URL: `${receiver.url}/flashcart`, WEBHOOK_SECRET: `whsec_${randomBytes(32).toString("base64")}` }),
      ...(sinks.includes("nats")
        ? { NATS_URL: natsUrl, NATS_STREAM: stream, NATS_SUBJECT_PREFIX: `flashcart-bench.${tag}.events` }
        : {}),
    },
    async stop() {
      if (receiver !== null) await stop(receiver);
      if (!sinks.includes("nats")) return;
      const connection = await connectNats({ servers: natsUrl });
      try {
        await (await jetstreamManager(connection)).streams.delete(stream).catch(() => false);
      } finally {
        await connection.close();
      }
    },
  };
}

/** Sums of a metric's samples whose labels contain `labels`, from the service's /metrics. */
async function metricSums(url: string): Promise<(name: string, labels?: string) => number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return (name, labels = "") =>
    text
      .split("\n")
      .filter((line) => line.startsWith(`${name}{`) && line.includes(labels))
      .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(" ") + 1)), 0);
}

/** Events written by the service so far, and delivered to each sink. */
async function relayCounts(url: string): Promise<{ written: number; webhook: number; nats: number }> {
  const sum = await metricSums(url);
  return {
    written: sum("flashcart_events_written_total"),
    webhook: sum("flashcart_events_delivered_total", 'sink="webhook"'),
    nats: sum("flashcart_events_delivered_total", 'sink="nats"'),
  };
}

/**
 * Waits until each of `sinks` has every event (how long that took, in ms); throws past `boundMs`. A
 * sink whose gauge /metrics does not show (yet) has not caught up.
 */
export async function drained(url: string, sinks: readonly string[], boundMs: number): Promise<number> {
  const started = performance.now();
  for (;;) {
    const text = await (await fetch(`${url}/metrics`)).text();
    const lines = new Set(text.split("\n"));
    if (sinks.every((sink) => lines.has(`flashcart_events_oldest_undelivered_age_seconds{sink="${sink}"} 0`)))
      return performance.now() - started;
    if (performance.now() - started > boundMs) throw new Error(`the relay did not catch up within ${boundMs} ms`);
    await Bun.sleep(100);
  }
}

if (import.meta.main) {
  main().catch((error) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(error instanceof LoadToolMissing ? 2 : 1);
  });
}
