/**
 * The bench's report: a Markdown table and an SVG chart people would rather look at than read. Both
 * group the figures by durability class and name the class on every row: a figure from one class
 * compared with one from the other measures the fsync, not the design.
 */
import { type Durability, type DurabilitySettings, durabilityClasses, durabilitySettings } from "../src/durability.ts";

export interface ScenarioResult {
  variant: string;
  /** The class the service ran in (SQLITE_SYNCHRONOUS and PG_SYNCHRONOUS_COMMIT set from it). */
  durability: Durability;
  scenario: string;
  kind: "coupon" | "order";
  connections: number;
  thinkMs: number;
  rps: number;
  ofCeiling: number;
  latencyMs: { p50: number; p95: number; p99: number; max: number };
  requests: number;
  statuses: Record<string, number>;
  rejectionRate: number;
  failureRate: number;
  serverErrors: number;
  invariants: string[];
  /**
   * CPU time of the service (every worker) over the run, per request: flashcart's own cost, which
   * hardly moves when other work shares the machine (PostgreSQL's share is not in it).
   */
  serviceCpuUsPerRequest?: number;
  /** PostgreSQL variants' coupon and order runs: pgbench's tps for the same claim or order (load/pgbench.ts). */
  postgres?: { tps: number } | { missing: string };
  /** With --events: the outbox and both sinks off, or on. */
  events?: "on" | "off";
  /** With --rounds N (N > 1): which of the rounds, from 1. */
  round?: number;
  /**
   * Claim phases that took the drop's last coupon: how long after the phase began it sold out, in ms.
   * The winning claims come first, so this is their cost apart from the 409s answered after.
   */
  soldOutMs?: number;
  /** With the outbox on: events written during the phase, delivered by its end, and when all were. */
  relay?: { written: number; deliveredByEnd: { webhook: number; nats: number }; drainMs: number };
}

/** Adapter efficiency: requests/s over pgbench's tps for the same claim or order ("–" where not measured). */
function ofPostgres(r: ScenarioResult): string {
  if (r.postgres === undefined) return "–";
  if ("missing" in r.postgres) return r.postgres.missing;
  return `${pct(r.rps / r.postgres.tps)} of ${Math.round(r.postgres.tps)} tps`;
}

/** A bare hello-world's latency under 100 connections pausing `thinkMs` (±50 %) between requests. */
export interface PaceFloor {
  thinkMs: number;
  latencyMs: { p50: number; p95: number; p99: number };
}

export interface BenchRun {
  startedAt: string;
  tool: string;
  toolVersion: string;
  bunVersion: string;
  cpus: number;
  cpuModel: string;
  commit: string;
  command: string;
  users: number;
  ceilingRps: number;
  /** The hello-world's latency at each paced scenario's think time (absent in older runs). */
  paceFloors?: PaceFloor[];
  /** What each class present in the results meant when they were measured. */
  durability: Partial<Record<Durability, DurabilitySettings>>;
  results: ScenarioResult[];
}

/** The settings of the classes `results` ran in, for BenchRun.durability. */
export function durabilityLegend(results: ScenarioResult[]): BenchRun["durability"] {
  return Object.fromEntries(classesOf(results).map((name) => [name, durabilitySettings[name]]));
}

/** The classes present, durable first, whatever order they ran in. */
const classesOf = (results: ScenarioResult[]) =>
  durabilityClasses.filter((c) => results.some((r) => r.durability === c));

const describeClass = (name: Durability, run: BenchRun) => {
  const settings = run.durability[name] ?? durabilitySettings[name];
  return `${name}: SQLite synchronous=${settings.sqliteSynchronous}, PostgreSQL synchronous_commit=${settings.pgSynchronousCommit}`;
};

const ms = (n: number) => (n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : Math.round(n).toString());
const pct = (n: number) => `${(n * 100).toFixed(n < 0.1 ? 2 : 1)} %`;
/** What sets a phase apart from its variant's others: the outbox off or on, the round. */
function phaseOf(r: ScenarioResult): string {
  const parts = [
    r.events === undefined ? null : `events ${r.events}`,
    r.round === undefined ? null : `round ${r.round}`,
  ];
  return parts.filter((part) => part !== null).join(", ");
}
const label = (r: ScenarioResult) =>
  `${r.variant}${phaseOf(r) === "" ? "" : ` ${phaseOf(r)}`} ${r.scenario} @${r.connections} · ${r.durability}`;

/** "7.12 / 9.30 s": when the drop sold out in the off and the on phase ("–" where it did not in one). */
function soldOutPair(off: ScenarioResult, on: ScenarioResult): string {
  if (off.soldOutMs === undefined && on.soldOutMs === undefined) return "–";
  const s = (r: ScenarioResult) => (r.soldOutMs === undefined ? "–" : (r.soldOutMs / 1000).toFixed(2));
  return `${s(off)} / ${s(on)} s`;
}

/**
 * With --events: each variant's phases with the outbox and both sinks off and on, side by side, the
 * ratio of their throughputs, and how far the relay was behind at the end of the phase.
 */
function eventsTable(results: ScenarioResult[]): string[] {
  const on = results.filter((r) => r.events === "on");
  if (on.length === 0) return [];
  const lines = [
    "",
    "## The outbox and both sinks (webhook, NATS JetStream) on against off",
    "",
    "Same variant, class and scenario, the service started afresh for each; ratio = req/s on ÷ req/s off. Events written during the phase, how many each sink had acknowledged when it ended, and how long after it every event was delivered. Claims: how long the drop took to sell out, off / on (the winning claims, which write; the rest are 409s answered after it, which do not).",
    "",
    "| durability | variant | scenario | req/s off | req/s on | ratio | p95 ms off / on | sold out after off / on | events | by the end: webhook / nats | all delivered after |",
    "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  const samePhase = (a: ScenarioResult, b: ScenarioResult) =>
    a.variant === b.variant &&
    a.durability === b.durability &&
    a.scenario === b.scenario &&
    a.connections === b.connections;
  /** Ratios by phase (variant, class, scenario, connections), in round order. */
  const ratios = new Map<string, { first: ScenarioResult; ratios: number[]; sellOuts: number[] }>();
  for (const r of on) {
    const off = results.find((o) => o.events === "off" && o.round === r.round && samePhase(o, r));
    if (off === undefined || r.relay === undefined) continue;
    const { written, deliveredByEnd, drainMs } = r.relay;
    const ratio = r.rps / off.rps;
    lines.push(
      `| ${r.durability} | ${r.variant}${r.round === undefined ? "" : ` (round ${r.round})`} | ${r.scenario} | ${Math.round(off.rps)} | ${Math.round(r.rps)} | **${ratio.toFixed(2)}** | ${ms(off.latencyMs.p95)} / ${ms(r.latencyMs.p95)} | ${soldOutPair(off, r)} | ${written} | ${deliveredByEnd.webhook} / ${deliveredByEnd.nats} | ${(drainMs / 1000).toFixed(1)} s |`,
    );
    const key = `${r.durability} ${r.variant} ${r.scenario} ${r.connections}`;
    const entry = ratios.get(key) ?? { first: r, ratios: [], sellOuts: [] };
    entry.ratios.push(ratio);
    if (off.soldOutMs !== undefined && r.soldOutMs !== undefined) entry.sellOuts.push(off.soldOutMs / r.soldOutMs);
    ratios.set(key, entry);
  }
  const repeated = [...ratios.values()].filter((entry) => entry.ratios.length > 1);
  if (repeated.length > 0) {
    lines.push(
      "",
      "Over the rounds (off and on in turn, on first in even rounds, so what drifts on the machine touches both alike):",
      "",
      "| durability | variant | scenario | ratio by round | median | claims won per second, on ÷ off: by round | median |",
      "|---|---|---|---|---:|---|---:|",
      ...repeated.map(({ first, ratios, sellOuts }) => {
        const won =
          sellOuts.length === 0
            ? "– | –"
            : `${sellOuts.map((x) => x.toFixed(2)).join(", ")} | ${median(sellOuts).toFixed(2)}`;
        return `| ${first.durability} | ${first.variant} | ${first.scenario} | ${ratios.map((x) => x.toFixed(2)).join(", ")} | **${median(ratios).toFixed(2)}** | ${won} |`;
      }),
    );
  }
  return lines;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

export function renderMarkdown(run: BenchRun): string {
  const lines = [
    "# flashcart bench",
    "",
    `\`${run.command}\` on ${run.startedAt} — ${run.tool} (${run.toolVersion}), Bun ${run.bunVersion}, ${run.cpus} × ${run.cpuModel}, commit ${run.commit}, ${run.users} users.`,
    `Load generator and server share the machine. wrk is closed-loop: each connection waits for its response (and think time) before sending again.`,
    "",
    `Ceiling (bare Bun.serve hello-world, same tool and connections): **${Math.round(run.ceilingRps)} req/s**.`,
    ...(run.paceFloors ?? []).map(
      (floor) =>
        `Latency floor at ${floor.thinkMs} ms think time (the same hello-world at a paced scenario's rate): p50 ${ms(floor.latencyMs.p50)} ms, p95 ${ms(floor.latencyMs.p95)} ms, p99 ${ms(floor.latencyMs.p99)} ms.`,
    ),
    "",
    "Figures are grouped by durability class (src/durability.ts); compare them within a class.",
    "\"of PostgreSQL\" (PostgreSQL variants, coupon and order runs): requests/s over pgbench's tps for the same claim's or order's statements on the same database, clients = pool connections (load/pgbench.ts).",
  ];
  for (const name of classesOf(run.results)) {
    const settings = run.durability[name] ?? durabilitySettings[name];
    const results = run.results.filter((r) => r.durability === name);
    lines.push(
      "",
      `## ${describeClass(name, run)}`,
      "",
      `${settings.promise[0]?.toUpperCase()}${settings.promise.slice(1)}.`,
      "",
      "| durability | variant | scenario | connections | think | req/s | of ceiling | of PostgreSQL | p50 ms | p95 ms | p99 ms | max ms | service CPU µs/req | 2xx | 409 | failures | invariants |",
      "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    );
    for (const r of results) {
      const ok = Object.entries(r.statuses)
        .filter(([s]) => Number(s) >= 200 && Number(s) < 300)
        .reduce((sum, [, n]) => sum + n, 0);
      lines.push(
        `| ${r.durability} | ${r.variant}${phaseOf(r) === "" ? "" : ` (${phaseOf(r)})`} | ${r.scenario} | ${r.connections} | ${r.thinkMs ? `${r.thinkMs} ms` : "–"} | ${Math.round(r.rps)} | ${pct(r.ofCeiling)} | ${ofPostgres(r)} | ${ms(r.latencyMs.p50)} | ${ms(r.latencyMs.p95)} | ${ms(r.latencyMs.p99)} | ${ms(r.latencyMs.max)} | ${r.serviceCpuUsPerRequest === undefined ? "–" : r.serviceCpuUsPerRequest.toFixed(1)} | ${ok} | ${r.statuses["409"] ?? 0} | ${pct(r.failureRate)} | ${r.invariants.length === 0 ? "all hold" : `**broken**: ${r.invariants.join("; ")}`} |`,
      );
    }
    for (const variant of new Set(results.map((r) => r.variant))) {
      const breakpoint = results.filter((r) => r.scenario === "breakpoint" && r.variant === variant);
      if (breakpoint.length === 0) continue;
      const crossed = breakpoint.find((r) => r.latencyMs.p95 > 500 || r.failureRate > 0.01);
      lines.push(
        "",
        crossed === undefined
          ? `Breakpoint (${variant}, ${name}): not reached up to ${breakpoint.at(-1)?.connections} connections (p95 ≤ 500 ms, failures ≤ 1 %).`
          : `Breakpoint (${variant}, ${name}): at ${crossed.connections} connections (p95 ${ms(crossed.latencyMs.p95)} ms, failures ${pct(crossed.failureRate)}).`,
      );
    }
  }
  lines.push(...eventsTable(run.results));
  lines.push("", "![throughput and p99 per scenario, by durability class](latest.svg)", "");
  return lines.join("\n");
}

const xml = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");

/**
 * Two bar charts side by side: throughput (as a share of the ceiling) and p99 latency, one row per
 * phase, under a heading line per durability class.
 */
export function renderSvg(run: BenchRun): string {
  const classes = classesOf(run.results);
  const rows = classes.flatMap((name) => run.results.filter((r) => r.durability === name));
  const rowHeight = 26;
  const top = 56;
  const labelWidth = 300;
  const barWidth = 300;
  const gap = 90;
  const width = labelWidth + barWidth * 2 + gap + 40;
  const lineCount = rows.length + classes.length;
  const height = top + lineCount * rowHeight + 30;
  const maxRps = Math.max(run.ceilingRps, ...rows.map((r) => r.rps));
  const maxP99 = Math.max(1, ...rows.map((r) => r.latencyMs.p99));
  const x2 = labelWidth + barWidth + gap;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="system-ui, sans-serif" font-size="12" role="img">`,
    "<title>flashcart bench: throughput and p99 latency per scenario</title>",
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="12" y="20" font-size="15" font-weight="600">flashcart bench — ${xml(run.tool)}, ${run.cpus} CPUs, commit ${xml(run.commit)}; compare within a durability class</text>`,
    `<text x="${labelWidth}" y="44" font-weight="600">throughput (req/s; line = hello-world ceiling ${Math.round(run.ceilingRps)})</text>`,
    `<text x="${x2}" y="44" font-weight="600">p99 latency (ms)</text>`,
  ];
  let line = 0;
  rows.forEach((r, i) => {
    if (i === 0 || rows[i - 1]?.durability !== r.durability) {
      parts.push(
        `<text x="12" y="${top + line * rowHeight + 15}" font-weight="600">${xml(describeClass(r.durability, run))}</text>`,
      );
      line += 1;
    }
    const y = top + line * rowHeight;
    line += 1;
    const w1 = Math.max(1, (r.rps / maxRps) * barWidth);
    const w2 = Math.max(1, (r.latencyMs.p99 / maxP99) * barWidth);
    const colour = r.invariants.length > 0 ? "#c62828" : r.kind === "coupon" ? "#1565c0" : "#2e7d32";
    parts.push(
      `<text x="12" y="${y + 15}">${xml(label(r))}</text>`,
      `<rect x="${labelWidth}" y="${y + 3}" width="${w1.toFixed(1)}" height="16" fill="${colour}"/>`,
      `<text x="${labelWidth + w1 + 4}" y="${y + 15}">${Math.round(r.rps)} (${pct(r.ofCeiling)})</text>`,
      `<rect x="${x2}" y="${y + 3}" width="${w2.toFixed(1)}" height="16" fill="#ef6c00"/>`,
      `<text x="${x2 + w2 + 4}" y="${y + 15}">${ms(r.latencyMs.p99)}</text>`,
    );
  });
  const ceilingX = labelWidth + (run.ceilingRps / maxRps) * barWidth;
  parts.push(
    `<line x1="${ceilingX.toFixed(1)}" y1="${top - 4}" x2="${ceilingX.toFixed(1)}" y2="${top + lineCount * rowHeight}" stroke="#555" stroke-dasharray="4 3"/>`,
    `<text x="12" y="${height - 10}" fill="#555">blue: coupon claims, green: orders, red: a broken invariant. ${xml(run.startedAt)}</text>`,
    "</svg>",
    "",
  );
  return parts.join("\n");
}
