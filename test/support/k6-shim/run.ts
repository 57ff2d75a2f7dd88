/**
 * Runs a k6 script for a few iterations under the shim in vu.ts, the way `k6 run` would: init once
 * for the options (VU 0, which then runs setup and teardown), setup's result handed as JSON to every
 * VU, each VU in a worker of its own running its iterations, teardown last. Executors and their timing
 * are not emulated; the options are validated as k6 would at start-up (scenarios, durations,
 * thresholds against the metrics that exist), and thresholds on rates and counts are evaluated
 * (latency thresholds are not: timings of a few requests on a shared machine mean nothing).
 *
 * `problems` lists everything that would make the script fail under k6 or that the tests treat as a
 * failure: an error at init, in setup or teardown, an exception in an iteration, a failed check,
 * invalid options, a crossed threshold.
 */
import type { FromVu, HttpReply, HttpRequest, MetricType, MetricValues, ToVu, VuReport } from "./vu.ts";

export interface K6Run {
  options: Record<string, any>;
  metrics: Record<string, MetricValues>;
  checks: Record<string, { passes: number; fails: number }>;
  problems: string[];
  /** Seconds of think time the iterations asked for (the shim does not sleep). */
  slept: number;
}

/** One reply must fit; flashcart's replies are a few hundred bytes. */
const EXCHANGE_BYTES = 4 << 20;

/** A worker running one VU, and the one call it is busy with. */
class Vu {
  private readonly worker = new Worker(new URL("./vu.ts", import.meta.url).href);
  private readonly sab = new SharedArrayBuffer(8 + EXCHANGE_BYTES);
  private pending: { resolve: (m: FromVu) => void; reject: (e: Error) => void } | undefined;

  constructor() {
    this.worker.onmessage = (event: MessageEvent<FromVu>) => {
      if (event.data.type === "request") void this.perform(event.data.requests);
      else this.pending?.resolve(event.data);
    };
    this.worker.onerror = (event) => this.pending?.reject(new Error(`VU worker: ${event.message}`));
  }

  init(script: string, env: Record<string, string>, vu: number): Promise<FromVu> {
    return this.send({ type: "init", script, env, vu, sab: this.sab });
  }

  send(message: ToVu): Promise<FromVu> {
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.worker.postMessage(message);
    });
  }

  /** Performs the requests and wakes the VU blocked in Atomics.wait. */
  private async perform(requests: HttpRequest[]): Promise<void> {
    const replies = await Promise.all(requests.map(fetchReply));
    let bytes = new TextEncoder().encode(JSON.stringify(replies));
    if (bytes.length > EXCHANGE_BYTES) {
      const tooLarge = replies.map((r) => ({ ...r, status: 0, body: "", error: "reply too large for the k6 shim" }));
      bytes = new TextEncoder().encode(JSON.stringify(tooLarge));
    }
    const flag = new Int32Array(this.sab, 0, 2);
    new Uint8Array(this.sab, 8).set(bytes);
    flag[1] = bytes.length;
    Atomics.store(flag, 0, 1);
    Atomics.notify(flag, 0);
  }

  stop(): void {
    this.worker.terminate();
  }
}

async function fetchReply(request: HttpRequest): Promise<HttpReply> {
  const started = performance.now();
  try {
    const res = await fetch(request.url, {
      method: request.method,
      headers: request.headers,
      body: request.body,
      signal: AbortSignal.timeout(request.timeoutMs),
    });
    const body = await res.text();
    const headers = Object.fromEntries(res.headers.entries());
    const durationMs = performance.now() - started;
    return { status: res.status, statusText: res.statusText, headers, body, url: res.url, error: "", durationMs };
  } catch (error) {
    // k6 does not throw on a network error: the response has status 0 and an error.
    const durationMs = performance.now() - started;
    return { status: 0, statusText: "", headers: {}, body: "", url: request.url, error: String(error), durationMs };
  }
}

export async function runK6Script(
  script: string,
  config: { env: Record<string, string>; vus: number; iterations: number },
): Promise<K6Run> {
  const run: K6Run = { options: {}, metrics: {}, checks: {}, problems: [], slept: 0 };
  const merge = (report: VuReport) => {
    for (const [name, m] of Object.entries(report.metrics)) {
      const into = run.metrics[name] ?? { ...m, sum: 0, count: 0, min: Infinity, max: -Infinity };
      run.metrics[name] = into;
      into.sum += m.sum;
      into.count += m.count;
      into.min = Math.min(into.min, m.min);
      into.max = Math.max(into.max, m.max);
      into.last = m.last;
    }
    for (const [name, c] of Object.entries(report.checks)) {
      const into = run.checks[name] ?? { passes: 0, fails: 0 };
      run.checks[name] = into;
      into.passes += c.passes;
      into.fails += c.fails;
    }
    run.problems.push(...report.errors);
    run.slept += report.slept;
  };
  /** The VU's reply, or undefined (and a problem) when it failed. */
  const ask = async (where: string, sending: Promise<FromVu>) => {
    const reply = await sending.catch((error: Error) => ({ type: "failed" as const, error: String(error) }));
    if (reply.type === "failed") {
      run.problems.push(`${where}: ${reply.error}`);
      return undefined;
    }
    if (reply.type === "done") merge(reply.report);
    return reply;
  };

  // VU 0 evaluates the script for its options, then runs setup and teardown, as in k6.
  const vus: Vu[] = [new Vu()];
  const vu0 = vus[0] as Vu;
  try {
    const first = await ask("init", vu0.init(script, config.env, 0));
    if (first?.type !== "ready") return run;
    run.options = first.options as Record<string, any>;
    run.problems.push(...optionProblems(run.options, first.metricTypes));
    if (run.problems.length > 0) return run;

    const setup = await ask("setup", vu0.send({ type: "call", fn: "setup", data: undefined }));
    if (setup?.type !== "done") return run;
    for (let n = 1; n <= config.vus; n++) vus.push(new Vu());
    await Promise.all(
      vus.slice(1).map(async (vu, i) => {
        const where = `VU ${i + 1}`;
        if ((await ask(`init of ${where}`, vu.init(script, config.env, i + 1))) === undefined) return;
        const iterations = config.iterations;
        await ask(where, vu.send({ type: "call", fn: "default", data: setup.result, iterations }));
      }),
    );
    await ask("teardown", vu0.send({ type: "call", fn: "teardown", data: setup.result }));

    for (const [name, c] of Object.entries(run.checks)) {
      if (c.fails > 0) run.problems.push(`check "${name}" failed ${c.fails} of ${c.passes + c.fails} times`);
    }
    run.problems.push(...crossedThresholds(run));
    return run;
  } finally {
    for (const vu of vus) vu.stop();
  }
}

// ---- options, as k6 validates them before it starts ----

const BUILTIN_METRICS: Record<string, MetricType> = {
  checks: "rate",
  data_received: "counter",
  data_sent: "counter",
  dropped_iterations: "counter",
  group_duration: "trend",
  http_req_blocked: "trend",
  http_req_connecting: "trend",
  http_req_duration: "trend",
  http_req_failed: "rate",
  http_req_receiving: "trend",
  http_req_sending: "trend",
  http_req_tls_handshaking: "trend",
  http_req_waiting: "trend",
  http_reqs: "counter",
  iteration_duration: "trend",
  iterations: "counter",
  vus: "gauge",
  vus_max: "gauge",
};
const AGGREGATIONS: Record<MetricType, RegExp> = {
  counter: /^(count|rate)$/,
  gauge: /^value$/,
  rate: /^rate$/,
  trend: /^(avg|min|max|med|p\(\d+(\.\d+)?\))$/,
};
const THRESHOLD = /^\s*([a-z]+(?:\(\d+(?:\.\d+)?\))?)\s*(<=|>=|<|>|===|==|!=)\s*(-?\d+(?:\.\d+)?)\s*$/;
const DURATION = /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h|d))+$/;

/** The fields each executor needs (k6 refuses to start without them) and its numeric ones. */
const EXECUTORS: Record<string, { required: string[] }> = {
  "shared-iterations": { required: [] },
  "per-vu-iterations": { required: [] },
  "constant-vus": { required: ["duration"] },
  "ramping-vus": { required: ["stages"] },
  "constant-arrival-rate": { required: ["rate", "duration", "preAllocatedVUs"] },
  "ramping-arrival-rate": { required: ["stages", "preAllocatedVUs"] },
  "externally-controlled": { required: ["duration"] },
};
const COUNTS = ["vus", "startVUs", "rate", "preAllocatedVUs", "maxVUs", "iterations", "startRate", "target"];
const DURATIONS = ["duration", "timeUnit", "maxDuration", "gracefulStop", "gracefulRampDown", "startTime"];

function optionProblems(options: Record<string, any>, declared: Record<string, MetricType>): string[] {
  const problems: string[] = [];
  const checkFields = (where: string, object: Record<string, unknown>) => {
    for (const key of COUNTS) {
      const value = object[key];
      if (value !== undefined && !(Number.isInteger(value) && (value as number) >= 0)) {
        problems.push(`${where}.${key}: ${JSON.stringify(value)} is not a count`);
      }
    }
    for (const key of DURATIONS) {
      const value = object[key];
      if (value !== undefined && !(typeof value === "string" && DURATION.test(value))) {
        problems.push(`${where}.${key}: ${JSON.stringify(value)} is not a duration`);
      }
    }
  };
  for (const [name, scenario] of Object.entries<Record<string, unknown>>(options.scenarios ?? {})) {
    const executor = EXECUTORS[String(scenario.executor)];
    if (executor === undefined) {
      problems.push(`scenario ${name}: unknown executor ${scenario.executor}`);
      continue;
    }
    for (const key of executor.required) {
      if (scenario[key] === undefined) problems.push(`scenario ${name}: ${scenario.executor} needs ${key}`);
    }
    checkFields(`scenario ${name}`, scenario);
    const stages = scenario.stages;
    if (stages !== undefined && !(Array.isArray(stages) && stages.length > 0)) {
      problems.push(`scenario ${name}: stages must be a non-empty list`);
    }
    for (const [i, stage] of (Array.isArray(stages) ? stages : []).entries())
      checkFields(`scenario ${name} stage ${i}`, stage);
  }
  for (const key of ["setupTimeout", "teardownTimeout"]) {
    if (options[key] !== undefined && !DURATION.test(String(options[key]))) problems.push(`${key}: not a duration`);
  }
  for (const stat of options.summaryTrendStats ?? []) {
    if (!AGGREGATIONS.trend.test(stat) && stat !== "count") problems.push(`summaryTrendStats: unknown ${stat}`);
  }
  for (const [key, value] of Object.entries(options.tags ?? {})) {
    if (typeof value !== "string") problems.push(`tags.${key}: tag values are strings`);
  }
  for (const threshold of thresholdsOf(options)) {
    const type = BUILTIN_METRICS[threshold.metric] ?? declared[threshold.metric];
    const parsed = THRESHOLD.exec(threshold.expression);
    if (type === undefined) problems.push(`threshold on ${threshold.metric}: no such metric`);
    else if (parsed === null) problems.push(`threshold ${threshold.expression} on ${threshold.metric}: cannot parse`);
    else if (!AGGREGATIONS[type].test(parsed[1] as string)) {
      problems.push(`threshold ${threshold.expression}: ${parsed[1]} is not an aggregation of a ${type}`);
    }
  }
  return problems;
}

/** `{ "name{tag:value}": ["expr", { threshold: "expr", abortOnFail }] }`, flattened. */
function thresholdsOf(options: Record<string, any>): { metric: string; expression: string }[] {
  return Object.entries<unknown[]>(options.thresholds ?? {}).flatMap(([name, list]) =>
    list.map((t) => ({
      metric: name.replace(/\{.*\}$/, ""),
      expression: typeof t === "string" ? t : String((t as { threshold: unknown }).threshold),
    })),
  );
}

const COMPARE: Record<string, (a: number, b: number) => boolean> = {
  "<": (a, b) => a < b,
  "<=": (a, b) => a <= b,
  ">": (a, b) => a > b,
  ">=": (a, b) => a >= b,
  "==": (a, b) => a === b,
  "===": (a, b) => a === b,
  "!=": (a, b) => a !== b,
};

/** Thresholds on rates and counts, evaluated over what the iterations (and setup) recorded. */
function crossedThresholds(run: K6Run): string[] {
  const crossed: string[] = [];
  for (const { metric, expression } of thresholdsOf(run.options)) {
    const [, aggregation, op, limit] = THRESHOLD.exec(expression) ?? [];
    const m = run.metrics[metric];
    const value =
      aggregation === "rate" && m?.type === "rate"
        ? m.sum / m.count
        : aggregation === "count"
          ? (m?.sum ?? 0)
          : aggregation === "value"
            ? m?.last
            : undefined;
    if (value === undefined) continue;
    if (!COMPARE[op as string]?.(value, Number(limit)))
      crossed.push(`threshold ${metric}: ${expression} crossed (${value})`);
  }
  return crossed;
}
