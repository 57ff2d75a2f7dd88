// Shared by the flashcart k6 scripts: scenarios, thresholds, tokens, status counters.
// Parameters (k6 run -e NAME=value): BASE_URL, USERS, SCENARIO (report|ramp|breakpoint|capacity|bench),
// JWT_SECRET (the server's secret, for signing tokens), THINK_MS, VUS, DURATION, RATE, SEEDED.
import crypto from "k6/crypto";
import encoding from "k6/encoding";
import http from "k6/http";
import { Counter } from "k6/metrics";

export const BASE_URL = __ENV.BASE_URL || "http://127.0.0.1:3000";
export const USERS = Number(__ENV.USERS || 1000);
const SECRET = __ENV.JWT_SECRET || "";

// Business rejections (409: sold out, already issued, not enough stock or points) are expected
// answers under a stampede, not failures; they are counted by status instead.
http.setResponseCallback(http.expectedStatuses({ min: 200, max: 299 }, 409));

const statusCounters = {
  ok: new Counter("status_2xx"),
  conflict: new Counter("status_409"),
  limited: new Counter("status_429"),
  server: new Counter("status_5xx"),
  other: new Counter("status_other"),
};

/** @param {import("k6/http").RefinedResponse<any>} res */
export function count(res) {
  if (res.status >= 200 && res.status < 300) statusCounters.ok.add(1);
  else if (res.status === 409) statusCounters.conflict.add(1);
  else if (res.status === 429) statusCounters.limited.add(1);
  else if (res.status >= 500) statusCounters.server.add(1);
  else statusCounters.other.add(1);
}

/**
 * An HS256 JWT signed with the server's secret, as `bun run token` makes.
 * @param {string} sub
 * @param {"user" | "admin"} role
 */
export function token(sub, role) {
  if (SECRET === "") throw new Error("set -e JWT_SECRET=<the server's secret> (see `bun run token`)");
  const now = Math.floor(Date.now() / 1000);
  const header = encoding.b64encode(JSON.stringify({ alg: "HS256", typ: "JWT" }), "rawurl");
  const payload = encoding.b64encode(JSON.stringify({ sub, role, iat: now, exp: now + 6 * 3600 }), "rawurl");
  const signature = crypto.hmac("sha256", SECRET, `${header}.${payload}`, "base64rawurl");
  return `${header}.${payload}.${signature}`;
}

/** Tokens of users 1..USERS, made once per VU. */
/** @type {string[]} */
const userTokens = [];
/** @param {number} userId */
export function userToken(userId) {
  if (userTokens[userId] === undefined) userTokens[userId] = token(String(userId), "user");
  return /** @type {string} */ (userTokens[userId]);
}

/** @param {string} bearer */
export function jsonHeaders(bearer) {
  return { headers: { "Content-Type": "application/json", Authorization: `Bearer ${bearer}` } };
}

export function randomUser() {
  return 1 + Math.floor(Math.random() * USERS);
}

/**
 * The scenario chosen with SCENARIO=…, and the report's thresholds.
 * @param {number} thinkMs mean think time of the report scenario
 * @returns {import("k6/options").Options}
 */
export function optionsFor(thinkMs) {
  const name = __ENV.SCENARIO || "report";
  /** @type {Record<string, import("k6/options").Scenario>} */
  const scenarios = {
    report: { executor: "constant-vus", vus: 100, duration: __ENV.DURATION || "60s" },
    ramp: {
      executor: "ramping-vus",
      startVUs: 10,
      stages: [
        { duration: "20s", target: 10 },
        { duration: "20s", target: 50 },
        { duration: "20s", target: 100 },
      ],
    },
    breakpoint: {
      executor: "ramping-vus",
      startVUs: 100,
      stages: [
        { duration: "30s", target: 300 },
        { duration: "30s", target: 600 },
        { duration: "30s", target: 1200 },
        { duration: "30s", target: 2400 },
      ],
    },
    capacity: {
      executor: "constant-arrival-rate",
      rate: Number(__ENV.RATE || 2000),
      timeUnit: "1s",
      duration: __ENV.DURATION || "60s",
      preAllocatedVUs: 200,
      maxVUs: 2000,
    },
    bench: { executor: "constant-vus", vus: Number(__ENV.VUS || 100), duration: __ENV.DURATION || "30s" },
  };
  const scenario = scenarios[name];
  if (scenario === undefined) throw new Error(`unknown SCENARIO ${name}: ${Object.keys(scenarios).join(", ")}`);
  const abort = name === "breakpoint";
  return {
    scenarios: { [name]: scenario },
    thresholds: {
      http_req_failed: [{ threshold: "rate<0.01", abortOnFail: abort }],
      http_req_duration: [{ threshold: "p(95)<500", abortOnFail: abort }],
    },
    summaryTrendStats: ["avg", "min", "med", "max", "p(95)", "p(99)"],
    setupTimeout: "5m",
    // Think time only where the scenario models people (the report); the others measure capacity.
    tags: { think_ms: String(name === "report" ? thinkMs : 0) },
  };
}

/** Seconds to sleep after an iteration: the report's think time, ±50 % so VUs do not move in lock-step. */
/** @param {number} thinkMs */
export function thinkSeconds(thinkMs) {
  const scenario = __ENV.SCENARIO || "report";
  const mean = __ENV.THINK_MS !== undefined ? Number(__ENV.THINK_MS) : scenario === "report" ? thinkMs : 0;
  return (mean * (0.5 + Math.random())) / 1000;
}

/**
 * Charges every seeded user `amount` points through the API (the report's set-up).
 * @param {string} admin
 * @param {number} amount
 */
export function chargeEveryUser(admin, amount) {
  for (let first = 1; first <= USERS; first += 100) {
    /** @type {import("k6/http").BatchRequest[]} */
    const batch = [];
    for (let id = first; id < first + 100 && id <= USERS; id++) {
      batch.push(["POST", `${BASE_URL}/api/users/${id}/points/charge`, JSON.stringify({ amount }), jsonHeaders(admin)]);
    }
    for (const res of http.batch(batch)) {
      if (res.status !== 200) throw new Error(`charging points failed: ${res.status} ${res.body}`);
    }
  }
}
