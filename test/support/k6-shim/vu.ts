/**
 * One k6 VU inside a Bun Worker: the part of the k6 JavaScript API the scripts in load/k6 use, as
 * virtual `k6`, `k6/http`, `k6/crypto`, `k6/encoding` and `k6/metrics` modules. The main thread
 * (run.ts) starts one worker per VU, so each VU evaluates the script's init code on its own, as k6 does.
 *
 * k6's HTTP calls block. Here a call posts the request to the main thread, which performs it with
 * `fetch`, and waits with `Atomics.wait` on a SharedArrayBuffer until the main thread has written the
 * reply into it and notified.
 *
 * What k6 refuses, this refuses too (with k6's own message where there is one): HTTP requests in the
 * init context, metrics declared outside it, imports of anything but k6 modules and relative files,
 * and a few Node globals k6 does not have. What the shim does not implement throws rather than
 * passing silently.
 */

import { Buffer } from "node:buffer";
import { createHash, createHmac, randomBytes } from "node:crypto";
import { dirname } from "node:path";
import { plugin } from "bun";

/** Main thread → VU. */
export type ToVu =
  | { type: "init"; script: string; env: Record<string, string>; vu: number; sab: SharedArrayBuffer }
  | { type: "call"; fn: "setup" | "teardown"; data: unknown }
  | { type: "call"; fn: "default"; data: unknown; iterations: number };

export interface HttpRequest {
  method: string;
  url: string;
  body: string | null;
  headers: Record<string, string>;
  timeoutMs: number;
}

export interface HttpReply {
  status: number;
  statusText: string;
  headers: Record<string, string>;
  body: string;
  url: string;
  error: string;
  durationMs: number;
}

export type MetricType = "counter" | "gauge" | "rate" | "trend";
export interface MetricValues {
  type: MetricType;
  /** Counter: the sum; gauge: the last value; rate: non-zero samples; trend: the sum. */
  sum: number;
  count: number;
  min: number;
  max: number;
  last: number;
}

export interface VuReport {
  metrics: Record<string, MetricValues>;
  checks: Record<string, { passes: number; fails: number }>;
  /** Exceptions: each ends its iteration (k6 logs it and goes on with the next). */
  errors: string[];
  /** How long the script asked to sleep, in seconds: the shim does not actually sleep. */
  slept: number;
}

/** VU → main thread. */
export type FromVu =
  | { type: "ready"; options: unknown; metricTypes: Record<string, MetricType> }
  | { type: "request"; requests: HttpRequest[] }
  | { type: "done"; result: unknown; report: VuReport }
  | { type: "failed"; error: string };

const K6_MODULES = ["k6", "k6/http", "k6/crypto", "k6/encoding", "k6/metrics"];

let stage: "init" | "setup" | "default" | "teardown" = "init";
let exchangeFlag: Int32Array<ArrayBufferLike> = new Int32Array(2);
let exchangeBytes: Uint8Array<ArrayBufferLike> = new Uint8Array(0);
const emptyReport = (): VuReport => ({ metrics: {}, checks: {}, errors: [], slept: 0 });
/** What happened since the last call returned. */
let report = emptyReport();
const metricTypes: Record<string, MetricType> = {};

const send = (message: FromVu) => postMessage(message);
const describe = (error: unknown) => (error instanceof Error ? (error.stack ?? String(error)) : String(error));

// ---- metrics (k6/metrics and the built-in ones) ----

function record(name: string, type: MetricType, value: number): void {
  const m = report.metrics[name] ?? { type, sum: 0, count: 0, min: Infinity, max: -Infinity, last: 0 };
  report.metrics[name] = m;
  if (!Number.isFinite(value)) report.errors.push(`metric ${name}: ${value} is not a number k6 can add`);
  m.sum += type === "rate" ? (value !== 0 ? 1 : 0) : value;
  m.count += 1;
  m.min = Math.min(m.min, value);
  m.max = Math.max(m.max, value);
  m.last = value;
}

function metricClass(type: MetricType) {
  return class {
    readonly name: string;
    constructor(name: string) {
      if (stage !== "init") throw new Error("metrics must be declared in the init context");
      if (!/^[\p{L}\p{N}._ !?/&#()<>%-]{1,128}$/u.test(name)) throw new Error(`invalid metric name '${name}'`);
      const known = metricTypes[name];
      if (known !== undefined && known !== type) throw new Error(`metric '${name}' already registered as a ${known}`);
      metricTypes[name] = type;
      this.name = name;
    }
    add(value: number | boolean): void {
      record(this.name, type, Number(value));
    }
  };
}

// ---- k6/encoding and k6/crypto ----

type Base64Variant = "std" | "rawstd" | "url" | "rawurl";
function base64(bytes: Uint8Array, variant: Base64Variant): string {
  const std = Buffer.from(bytes).toString("base64");
  switch (variant) {
    case "std":
      return std;
    case "rawstd":
      return std.replace(/=+$/, "");
    case "url":
      return std.replace(/\+/g, "-").replace(/\//g, "_");
    case "rawurl":
      return std.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    default:
      throw new Error(`unsupported base64 encoding: ${variant}`);
  }
}

const bytesOf = (input: string | ArrayBuffer) =>
  typeof input === "string" ? new TextEncoder().encode(input) : new Uint8Array(input);

const encoding = {
  b64encode: (input: string | ArrayBuffer, variant: Base64Variant = "std") => base64(bytesOf(input), variant),
  b64decode(input: string, variant: Base64Variant = "std", format?: "s") {
    if (!["std", "rawstd", "url", "rawurl"].includes(variant))
      throw new Error(`unsupported base64 encoding: ${variant}`);
    const bytes = Buffer.from(input, variant.endsWith("url") ? "base64url" : "base64");
    return format === "s" ? bytes.toString("utf8") : new Uint8Array(bytes).buffer;
  },
};

type OutputEncoding = "hex" | "base64" | "base64url" | "base64rawurl" | "binary";
function digestOut(digest: Buffer, output: OutputEncoding): string | ArrayBuffer {
  switch (output) {
    case "hex":
      return digest.toString("hex");
    case "base64":
      return base64(digest, "std");
    case "base64url":
      return base64(digest, "url");
    case "base64rawurl":
      return base64(digest, "rawurl");
    case "binary":
      return new Uint8Array(digest).buffer;
    default:
      throw new Error(`unsupported output encoding: ${output}`);
  }
}

const HASHES = ["md5", "sha1", "sha256", "sha384", "sha512"];
function hashName(algorithm: string): string {
  if (!HASHES.includes(algorithm)) throw new Error(`the k6 shim does not implement hash ${algorithm}`);
  return algorithm;
}

const hashFn = (algorithm: string) => (input: string | ArrayBuffer, output: OutputEncoding) =>
  digestOut(createHash(hashName(algorithm)).update(bytesOf(input)).digest(), output);

const crypto = {
  hmac: (algorithm: string, secret: string | ArrayBuffer, data: string | ArrayBuffer, output: OutputEncoding) =>
    digestOut(createHmac(hashName(algorithm), bytesOf(secret)).update(bytesOf(data)).digest(), output),
  md5: hashFn("md5"),
  sha1: hashFn("sha1"),
  sha256: hashFn("sha256"),
  sha384: hashFn("sha384"),
  sha512: hashFn("sha512"),
  randomBytes: (size: number) => new Uint8Array(randomBytes(size)).buffer,
};

// ---- k6 ----

function check(value: unknown, sets: Record<string, unknown>): boolean {
  let all = true;
  for (const [name, predicate] of Object.entries(sets)) {
    const ok = Boolean(typeof predicate === "function" ? predicate(value) : predicate);
    const counts = report.checks[name] ?? { passes: 0, fails: 0 };
    report.checks[name] = counts;
    if (ok) counts.passes += 1;
    else counts.fails += 1;
    record("checks", "rate", ok ? 1 : 0);
    all &&= ok;
  }
  return all;
}

function group<T>(name: string, fn: () => T): T {
  if (name.includes("::")) throw new Error("group and check names may not contain '::'");
  const result = fn();
  if (result instanceof Promise) throw new Error("group() does not support async functions as arguments");
  return result;
}

function sleep(seconds: number): void {
  if (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds < 0) {
    throw new Error(`sleep(${seconds}): not a number of seconds`);
  }
  // Recorded, not slept: a few iterations need not wait out the report's think time.
  report.slept += seconds;
}

const k6 = {
  check,
  group,
  sleep,
  fail: (message = "") => {
    throw new Error(message);
  },
};

// ---- k6/http ----

/** What `http.expectedStatuses` returns; `setResponseCallback` takes nothing else (as in k6). */
class ExpectedStatuses {
  constructor(readonly accepts: (status: number) => boolean) {}
}

function expectedStatuses(...specs: (number | { min: number; max: number })[]): ExpectedStatuses {
  for (const spec of specs) {
    const ok =
      Number.isInteger(spec) ||
      (typeof spec === "object" && Number.isInteger(spec?.min) && Number.isInteger(spec?.max));
    if (!ok) throw new Error(`expectedStatuses: ${JSON.stringify(spec)} is neither a status nor {min, max}`);
  }
  return new ExpectedStatuses((status) =>
    specs.some((s) => (typeof s === "number" ? s === status : s.min <= status && status <= s.max)),
  );
}

function asCallback(value: unknown): ExpectedStatuses | null {
  if (value === null) return null;
  if (value instanceof ExpectedStatuses) return value;
  throw new Error("set a response callback made by http.expectedStatuses(), or null");
}

let responseCallback: ExpectedStatuses | null = expectedStatuses({ min: 200, max: 399 });

interface Params {
  headers?: Record<string, string>;
  tags?: Record<string, string>;
  timeout?: string | number;
  responseCallback?: ExpectedStatuses | null;
}
const PARAMS = ["headers", "tags", "timeout", "responseCallback"];

function durationMs(value: string | number): number {
  if (typeof value === "number") return value;
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  const rest = value.replace(/(\d+(?:\.\d+)?)(ms|s|m|h)/g, (_, n: string, unit: string) => {
    total += Number(n) * (units[unit] ?? 0);
    return "";
  });
  if (rest !== "" || value === "") throw new Error(`invalid duration ${JSON.stringify(value)}`);
  return total;
}

type Body = string | Record<string, string | number | boolean> | null | undefined;
function requestOf(method: string, url: string, body: Body, params: Params = {}): HttpRequest {
  const unknown = Object.keys(params).filter((key) => !PARAMS.includes(key));
  if (unknown.length > 0) throw new Error(`the k6 shim does not implement request params ${unknown.join(", ")}`);
  if (typeof url !== "string") throw new Error("the k6 shim takes only string URLs");
  const headers: Record<string, string> = { "User-Agent": "k6-shim (flashcart tests)", ...params.headers };
  let text: string | null = null;
  if (typeof body === "string") text = body;
  else if (body !== null && body !== undefined) {
    // k6 form-encodes an object body.
    if (typeof body !== "object" || body instanceof ArrayBuffer) throw new Error("the k6 shim takes string bodies");
    text = new URLSearchParams(Object.entries(body).map(([k, v]): [string, string] => [k, String(v)])).toString();
    headers["Content-Type"] ??= "application/x-www-form-urlencoded";
  }
  return { method, url, body: text, headers, timeoutMs: durationMs(params.timeout ?? "60s") };
}

/** Go's http.CanonicalHeaderKey: k6 scripts see "Content-Type", not "content-type". */
const canonical = (name: string) =>
  name.replace(/(^|-)([a-z])/g, (_, dash: string, c: string) => dash + c.toUpperCase());

function responseOf(request: HttpRequest, reply: HttpReply, params: Params = {}) {
  const callback = params.responseCallback === undefined ? responseCallback : asCallback(params.responseCallback);
  const expected = callback === null || callback.accepts(reply.status);
  record("http_reqs", "counter", 1);
  record("http_req_failed", "rate", expected ? 0 : 1);
  record("http_req_duration", "trend", reply.durationMs);
  return {
    status: reply.status,
    status_text: reply.statusText,
    headers: Object.fromEntries(Object.entries(reply.headers).map(([k, v]) => [canonical(k), v])),
    body: reply.body,
    url: reply.url,
    error: reply.error,
    error_code: reply.error === "" ? 0 : 1000,
    timings: { duration: reply.durationMs },
    request: { method: request.method, url: request.url, body: request.body ?? "", headers: request.headers },
    json(selector?: string): unknown {
      if (selector !== undefined) throw new Error("the k6 shim does not implement json(selector)");
      return JSON.parse(reply.body);
    },
  };
}

/** Blocks until the main thread has performed every request and written the replies into the shared buffer. */
function exchange(requests: HttpRequest[]): HttpReply[] {
  if (stage === "init") throw new Error("Making http requests in the init context is not supported");
  Atomics.store(exchangeFlag, 0, 0);
  send({ type: "request", requests });
  Atomics.wait(exchangeFlag, 0, 0);
  const length = exchangeFlag[1] ?? 0;
  return JSON.parse(new TextDecoder().decode(exchangeBytes.slice(0, length))) as HttpReply[];
}

function one(method: string, url: string, body: Body, params?: Params) {
  const request = requestOf(method, url, body, params);
  return responseOf(request, exchange([request])[0] as HttpReply, params);
}

type BatchRequest =
  | string
  | [string, string, Body?, Params?]
  | { method?: string; url: string; body?: Body; params?: Params };

function batch(requests: BatchRequest[] | Record<string, BatchRequest>) {
  const entries = Object.entries(requests).map(([key, r]) => {
    const [method, url, body, params] =
      typeof r === "string" ? ["GET", r] : Array.isArray(r) ? r : [r.method ?? "GET", r.url, r.body, r.params];
    return { key, params, request: requestOf(method.toUpperCase(), url, body, params) };
  });
  const replies = exchange(entries.map((e) => e.request));
  const responses = entries.map((e, i) => responseOf(e.request, replies[i] as HttpReply, e.params));
  if (Array.isArray(requests)) return responses;
  return Object.fromEntries(entries.map((e, i) => [e.key, responses[i]]));
}

const http = {
  get: (url: string, params?: Params) => one("GET", url, null, params),
  head: (url: string, params?: Params) => one("HEAD", url, null, params),
  post: (url: string, body?: Body, params?: Params) => one("POST", url, body, params),
  put: (url: string, body?: Body, params?: Params) => one("PUT", url, body, params),
  patch: (url: string, body?: Body, params?: Params) => one("PATCH", url, body, params),
  del: (url: string, body?: Body, params?: Params) => one("DELETE", url, body, params),
  options: (url: string, body?: Body, params?: Params) => one("OPTIONS", url, body, params),
  request: (method: string, url: string, body?: Body, params?: Params) => one(method.toUpperCase(), url, body, params),
  batch,
  expectedStatuses,
  setResponseCallback: (callback: unknown) => {
    responseCallback = asCallback(callback);
  },
};

// ---- the virtual modules, and what a script may import ----

plugin({
  name: "k6 shim",
  setup(build) {
    const modules: Record<string, Record<string, unknown>> = {
      k6,
      "k6/http": http,
      "k6/crypto": crypto,
      "k6/encoding": encoding,
      "k6/metrics": {
        Counter: metricClass("counter"),
        Gauge: metricClass("gauge"),
        Rate: metricClass("rate"),
        Trend: metricClass("trend"),
      },
    };
    for (const [name, exports] of Object.entries(modules)) {
      build.module(name, () => ({ exports: { default: exports, ...exports }, loader: "object" }));
    }
  },
});

/** Only k6 modules and relative files: k6 has no node_modules, no node: or bun: modules. */
function allowImportsUnder(dir: string): void {
  plugin({
    name: "k6 imports",
    setup(build) {
      build.onLoad({ filter: /\.js$/ }, async ({ path }) => {
        const code = await Bun.file(path).text();
        if (!path.startsWith(dir)) return { contents: code, loader: "js" };
        for (const { path: target } of new Bun.Transpiler({ loader: "js" }).scanImports(code)) {
          const relative = target.startsWith("./") || target.startsWith("../");
          if (!relative && !K6_MODULES.includes(target)) {
            throw new Error(`${path} imports ${target}: k6 cannot (or this shim does not implement it)`);
          }
        }
        return { contents: code, loader: "js" };
      });
    },
  });
}

// ---- the VU ----

let script: Record<string, unknown> = {};
const g = globalThis as Record<string, unknown>;
declare const self: Worker;

self.onmessage = async (event: MessageEvent<ToVu>) => {
  const message = event.data;
  try {
    if (message.type === "init") {
      exchangeFlag = new Int32Array(message.sab, 0, 2);
      exchangeBytes = new Uint8Array(message.sab, 8);
      g.__ENV = { ...message.env };
      g.__VU = message.vu;
      g.__ITER = 0;
      // Globals a script could lean on under Bun that k6 does not have (Bun itself cannot be deleted).
      for (const name of ["fetch", "process", "Buffer"]) delete g[name];
      allowImportsUnder(dirname(message.script));
      script = await import(message.script);
      if (typeof script.default !== "function") throw new Error("the script must export a default function");
      stage = "setup";
      // k6 reads the options as JSON: whatever does not survive that does not reach k6.
      const options = JSON.parse(JSON.stringify(script.options ?? {}));
      send({ type: "ready", options, metricTypes });
      return;
    }
    const fn = script[message.fn];
    let result: unknown;
    if (message.fn === "default") {
      stage = "default";
      for (let iteration = 0; iteration < message.iterations; iteration++) {
        g.__ITER = iteration;
        const started = performance.now();
        try {
          await (fn as (data: unknown) => unknown)(message.data);
        } catch (error) {
          report.errors.push(`VU ${g.__VU} iteration ${iteration}: ${describe(error)}`);
        }
        record("iterations", "counter", 1);
        record("iteration_duration", "trend", performance.now() - started);
      }
    } else if (typeof fn === "function") {
      stage = message.fn;
      // k6 hands setup's result to the VUs as JSON.
      const returned = await fn(message.data);
      result = returned === undefined ? undefined : JSON.parse(JSON.stringify(returned));
    }
    send({ type: "done", result, report });
    report = emptyReport();
  } catch (error) {
    send({ type: "failed", error: describe(error) });
  }
};
