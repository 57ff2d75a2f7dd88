/** Drives load with wrk or k6 and returns one result shape for both; `loadDriver` decides which. */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { signToken } from "../src/auth/tokens.ts";

export type LoadTool = "wrk" | "k6";

export interface LoadResult {
  requests: number;
  durationUs: number;
  latencyUs: { p50: number; p95: number; p99: number; max: number; mean: number };
  statuses: Record<string, number>;
  socketErrors: { connect: number; read: number; write: number; timeout: number };
}

export interface Phase {
  url: string;
  kind: "coupon" | "order" | "hello";
  connections: number;
  thinkMs: number;
  seconds: number;
  /** The drop the coupon scenario claims (ignored by the others). */
  couponId: number;
}

const root = resolve(import.meta.dir, "..");

/** wrk is closed-loop: each connection waits for its response (and the think time) before the next request. */
async function runWrk(phase: Phase & { tokensFile: string; products: number }): Promise<LoadResult> {
  const script = phase.kind === "hello" ? "load/wrk/hello.lua" : "load/wrk/flashcart.lua";
  const args = [
    "wrk",
    "-t1",
    `-c${phase.connections}`,
    `-d${phase.seconds}s`,
    "--timeout",
    "10s",
    "-s",
    script,
    `${phase.url}/`,
  ];
  if (phase.kind === "hello") {
    if (phase.thinkMs > 0) args.push("--", String(phase.thinkMs));
  } else {
    args.push(
      "--",
      phase.kind,
      phase.tokensFile,
      String(phase.thinkMs),
      String(phase.products),
      String(phase.couponId),
    );
  }
  const proc = Bun.spawn(args, { cwd: root, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = [
    await new Response(proc.stdout).text(),
    await new Response(proc.stderr).text(),
    await proc.exited,
  ];
  const line = out
    .trim()
    .split("\n")
    .reverse()
    .find((l) => l.startsWith("{"));
  if (code !== 0 || line === undefined) throw new Error(`wrk failed (${code}): ${err}${out}`);
  return JSON.parse(line) as LoadResult;
}

/** k6 runs the scripts in load/k6 against an already seeded service (SEEDED=1 skips their own setup). */
async function runK6(phase: Phase & { users: number; products: number; secret: string }): Promise<LoadResult> {
  const dir = mkdtempSync(join(tmpdir(), "flashcart-k6-"));
  const summary = join(dir, "summary.json");
  const scenario = phase.thinkMs > 0 ? "report" : "bench";
  try {
    const proc = Bun.spawn(
      [
        "k6",
        "run",
        "--quiet",
        "--summary-export",
        summary,
        ...["-e", `BASE_URL=${phase.url}`, "-e", `SCENARIO=${scenario}`, "-e", `VUS=${phase.connections}`],
        ...["-e", `DURATION=${phase.seconds}s`, "-e", `THINK_MS=${phase.thinkMs}`, "-e", `USERS=${phase.users}`],
        ...["-e", `JWT_SECRET=${phase.secret}`, "-e", "SEEDED=1", "-e", `COUPON_ID=${phase.couponId}`],
        ...["-e", `PRODUCTS=${phase.products}`],
        `load/k6/${phase.kind}.js`,
      ],
      { cwd: root, stdout: "pipe", stderr: "pipe" },
    );
    const code = await proc.exited;
    // k6 exits 99 when a threshold fails; the numbers are still valid and reported as such.
    if (code !== 0 && code !== 99) throw new Error(`k6 failed (${code}): ${await new Response(proc.stderr).text()}`);
    const metrics = JSON.parse(readFileSync(summary, "utf8")).metrics as Record<string, Record<string, number>>;
    const count = (name: string) => metrics[name]?.count ?? 0;
    const duration = metrics.http_req_duration ?? {};
    const reqs = metrics.http_reqs ?? { count: 0, rate: 1 };
    return {
      requests: reqs.count ?? 0,
      durationUs: ((reqs.count ?? 0) / (reqs.rate || 1)) * 1e6,
      latencyUs: {
        p50: (duration.med ?? 0) * 1000,
        p95: (duration["p(95)"] ?? 0) * 1000,
        p99: (duration["p(99)"] ?? 0) * 1000,
        max: (duration.max ?? 0) * 1000,
        mean: (duration.avg ?? 0) * 1000,
      },
      statuses: {
        "200": count("status_2xx"),
        "409": count("status_409"),
        "429": count("status_429"),
        "500": count("status_5xx"),
        "0": count("status_other"),
      },
      socketErrors: { connect: 0, read: 0, write: 0, timeout: 0 },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A load tool, chosen and prepared once: the bench runs every phase through it without asking which. */
export interface LoadDriver {
  tool: LoadTool;
  /** What the tool says of its version, for the report. */
  version: string;
  run(phase: Phase): Promise<LoadResult>;
}

/** Neither k6 nor wrk is installed (or the one asked for is not). */
export class LoadToolMissing extends Error {}

const INSTALL_HINT = [
  "Install one of them:",
  "  Debian/Ubuntu: sudo apt-get install wrk",
  "  macOS:         brew install wrk      (or: brew install k6)",
  "  k6 elsewhere:  https://grafana.com/docs/k6/latest/set-up/install-k6/",
].join("\n");

/** The first line a command prints (a tool's version, a commit hash). */
export function versionOf(cmd: string[]): string {
  const out = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  return `${out.stdout.toString()}${out.stderr.toString()}`.trim().split("\n")[0] ?? "unknown";
}

/**
 * The one place that decides the load tool: k6 when asked for, or with "auto" when it is on PATH (its
 * scripts sign their own tokens); otherwise wrk, which reads one pre-signed token per seeded user from
 * a file written here into `workDir`.
 */
export async function loadDriver(
  wanted: "auto" | LoadTool,
  context: { secret: string; users: number; products: number; workDir: string },
): Promise<LoadDriver> {
  const has = (cmd: string) => Bun.which(cmd) !== null;
  if (wanted === "k6" || (wanted === "auto" && has("k6"))) {
    if (!has("k6")) throw new LoadToolMissing(`k6 is not on PATH. ${INSTALL_HINT}`);
    return {
      tool: "k6",
      version: versionOf(["k6", "version"]),
      run: (phase) =>
        runK6({
          ...phase,
          users: phase.kind === "hello" ? 0 : context.users,
          products: phase.kind === "hello" ? 0 : context.products,
          secret: context.secret,
        }),
    };
  }
  if (!has("wrk")) throw new LoadToolMissing(`Neither k6 nor wrk is installed. ${INSTALL_HINT}`);
  const tokensFile = join(context.workDir, "tokens.txt");
  const key = new TextEncoder().encode(context.secret);
  const lines: string[] = [];
  for (let id = 1; id <= context.users; id++) {
    lines.push(await signToken(key, { sub: String(id), role: "user" }, 6 * 3600));
  }
  await Bun.write(tokensFile, `${lines.join("\n")}\n`);
  return {
    tool: "wrk",
    version: versionOf(["wrk", "-v"]),
    run: (phase) => runWrk({ ...phase, tokensFile, products: phase.kind === "hello" ? 0 : context.products }),
  };
}
