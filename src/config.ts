import { z } from "zod";
import {
  type Durability,
  durabilityOf,
  type PgSynchronousCommit,
  pgSynchronousCommitLevels,
  type SqliteSynchronous,
  sqliteSynchronousLevels,
} from "./durability.ts";
import { REDIS_TIMEOUT_MS } from "./redis-link.ts";
import { type CouponStrategy, couponStrategies } from "./store/pg/coupon-strategies.ts";
import { PG_CONNECT_TIMEOUT_MS } from "./store/pg/database.ts";

/**
 * Configuration comes from the environment only, validated once at start-up. A bad value stops the
 * process with a message naming the variable, never a stack trace.
 */
const databaseUrl = z
  .string()
  .trim()
  .transform((url, ctx) => {
    if (url === "sqlite::memory:") return { kind: "sqlite" as const, path: ":memory:" };
    if (url.startsWith("sqlite:")) {
      const path = url.slice("sqlite:".length).replace(/^\/\/(?=\.|\/)/, "");
      if (path.length > 0) return { kind: "sqlite" as const, path };
    }
    if (/^postgres(ql)?:\/\/./.test(url) && URL.canParse(url)) {
      // `?schema=name` puts flashcart's tables (and its migration bookkeeping) in their own schema.
      const parsed = new URL(url);
      const schema = parsed.searchParams.get("schema");
      if (schema !== null && !/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
        ctx.addIssue({ code: "custom", message: "the schema parameter must be a lower-case SQL identifier" });
        return z.NEVER;
      }
      parsed.searchParams.delete("schema");
      return { kind: "postgres" as const, url: parsed.href, schema };
    }
    ctx.addIssue({
      code: "custom",
      message: `expected sqlite:<file path>, sqlite::memory: or postgres://user@host:port/database (got "${url}")`,
    });
    return z.NEVER;
  });

/** A Standard Webhooks secret: `whsec_` and the base64 of 24 to 64 random bytes. */
const webhookSecret = z
  .string()
  .trim()
  .regex(/^whsec_[A-Za-z0-9+/]+={0,2}$/, "expected whsec_ followed by base64")
  .refine((secret) => {
    const bytes = Buffer.from(secret.slice("whsec_".length), "base64").length;
    return bytes >= 24 && bytes <= 64;
  }, "the base64 after whsec_ must hold 24 to 64 bytes");

const envSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65_535).default(3000),
  /** Serving processes sharing PORT (`serve --workers N` overrides it). */
  WORKERS: z.coerce.number().int().min(1).max(128).default(1),
  HOST: z.string().min(1).default("0.0.0.0"),
  DATABASE_URL: databaseUrl.prefault("sqlite:./data/flashcart.db"),
  LOG_LEVEL: z.enum(["debug", "info", "warn", "error", "silent"]).default("info"),
  /** Share of requests logged at info, one line each (0..1): lower it under heavy load. */
  LOG_SAMPLE: z.coerce.number().min(0).max(1).default(1),
  /** Prometheus metrics at /metrics. */
  METRICS: z.enum(["on", "off"]).default("on"),
  /** FULL (durable) fsyncs each commit before the answer; NORMAL (relaxed) may lose the last commits on power loss, never corrupts. */
  SQLITE_SYNCHRONOUS: z.enum(sqliteSynchronousLevels).default("FULL"),
  SQLITE_BUSY_TIMEOUT_MS: z.coerce.number().int().min(0).max(60_000).default(5000),
  /** HS256 secret for bearer tokens; unset with a SQLite file: generated once beside the database. */
  JWT_SECRET: z
    .string()
    .refine((secret) => Buffer.byteLength(secret) >= 32, "must be at least 32 bytes")
    .optional(),
  /** Per-caller limits on coupon claims and order placement, per window; 0 turns a limit off. */
  RATE_LIMIT_WINDOW_MS: z.coerce.number().int().min(100).max(3_600_000).default(10_000),
  RATE_LIMIT_COUPON_CLAIMS: z.coerce.number().int().min(0).max(1_000_000).default(50),
  RATE_LIMIT_ORDERS: z.coerce.number().int().min(0).max(1_000_000).default(50),
  PG_POOL_MAX: z.coerce.number().int().min(1).max(1000).default(10),
  PG_STATEMENT_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(5000),
  /** Bound on opening one PostgreSQL connection: past it, the request waiting for it is answered 503. */
  PG_CONNECT_TIMEOUT_MS: z.coerce.number().int().min(10).max(60_000).default(PG_CONNECT_TIMEOUT_MS),
  /** on (durable): the commit's WAL is flushed before the answer; off (relaxed): like SQLite's NORMAL. */
  PG_SYNCHRONOUS_COMMIT: z.enum(pgSynchronousCommitLevels).default("on"),
  /** How PostgreSQL hands out a drop: atomic | pessimistic | optimistic | redis (see README). */
  COUPON_STRATEGY: z.enum(couponStrategies).default("atomic"),
  /** Redis for the `redis` coupon strategy; set explicitly with WORKERS > 1, the workers' shared rate limits too. */
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\/./, "expected redis://host:port")
    .default("redis://127.0.0.1:6379"),
  /** Bound on one Redis command, connecting included: past it, 503 (coupon claims) or uncounted (rate limits). */
  REDIS_TIMEOUT_MS: z.coerce.number().int().min(10).max(60_000).default(REDIS_TIMEOUT_MS),
  /** Prepended to every rate-limit key in Redis: deployments sharing one Redis need different prefixes. */
  RATE_LIMIT_REDIS_PREFIX: z.string().min(1).default("flashcart:rate-limit:"),
  /** The transactional outbox: every committed claim, order, cancel and charge records its event. */
  EVENTS: z.enum(["on", "off"]).default("on"),
  /** Events older than this are deleted, once every configured sink has received them. */
  EVENTS_RETENTION_DAYS: z.coerce.number().int().min(1).max(3650).default(7),
  /** Where the relay POSTs each event, signed per Standard Webhooks. */
  WEBHOOK_URL: z.url({ protocol: /^https?$/, error: "expected an http:// or https:// URL" }).optional(),
  WEBHOOK_SECRET: webhookSecret.optional(),
  /** A delivery not answered 2xx within this is retried. */
  WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(5000),
  /** NATS with JetStream, where the relay publishes each event. */
  NATS_URL: z
    .string()
    .regex(/^(nats|tls):\/\/./, "expected nats://host:port")
    .optional(),
  NATS_STREAM: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/, "letters, digits, _ and - only")
    .default("FLASHCART_EVENTS"),
  NATS_SUBJECT_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, "dot-separated tokens of letters, digits, _ and -")
    .default("flashcart.events"),
});

export type LogLevel = z.infer<typeof envSchema>["LOG_LEVEL"];

export interface Config {
  port: number;
  host: string;
  workers: number;
  database: DatabaseConfig;
  logLevel: LogLevel;
  logSample: number;
  metrics: boolean;
  sqlite: { synchronous: SqliteSynchronous; busyTimeoutMs: number };
  /** The durability class of the backend DATABASE_URL selects, from its synchronous setting. */
  durability: Durability;
  jwtSecret: string | null;
  rateLimit: RateLimits;
  /** Where the workers count rate limits together; null: each process counts alone, in memory. */
  sharedRateLimits: { redisUrl: string; prefix: string } | null;
  /** Bound on one Redis command, connecting included (coupon strategy and shared rate limits alike). */
  redisTimeoutMs: number;
  pg: PgConfig;
  events: EventsConfig;
}

export interface EventsConfig {
  /** Whether writes record events (EVENTS=on). */
  recording: boolean;
  retentionDays: number;
  webhook: { url: string; secret: string; timeoutMs: number } | null;
  nats: { url: string; stream: string; subjectPrefix: string } | null;
}

export type DatabaseConfig =
  | { kind: "sqlite"; path: string }
  | { kind: "postgres"; url: string; schema: string | null };

export interface PgConfig {
  poolMax: number;
  statementTimeoutMs: number;
  connectTimeoutMs: number;
  synchronousCommit: PgSynchronousCommit;
  couponStrategy: CouponStrategy;
  redisUrl: string;
}

export interface RateLimits {
  windowMs: number;
  /** Requests per window per caller; 0 = no limit. */
  couponClaims: number;
  orders: number;
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // Empty variables count as unset, as in most shells' `VAR= cmd`.
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ""));
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  ${issue.path.join(".")}: ${issue.message}`);
    throw new ConfigError(`Invalid configuration:\n${lines.join("\n")}`);
  }
  const e = parsed.data;
  if (e.DATABASE_URL.kind === "postgres" && e.JWT_SECRET === undefined) {
    // Several processes share a PostgreSQL database: they must share one configured secret.
    throw new ConfigError("Invalid configuration:\n  JWT_SECRET: required with a PostgreSQL DATABASE_URL");
  }
  if ((e.WEBHOOK_URL === undefined) !== (e.WEBHOOK_SECRET === undefined)) {
    throw new ConfigError("Invalid configuration:\n  WEBHOOK_URL, WEBHOOK_SECRET: set both, or neither");
  }
  if (e.EVENTS === "off" && (e.WEBHOOK_URL !== undefined || e.NATS_URL !== undefined)) {
    throw new ConfigError("Invalid configuration:\n  EVENTS: a sink (WEBHOOK_URL, NATS_URL) needs EVENTS=on");
  }
  if (e.WORKERS > 1 && e.DATABASE_URL.kind === "sqlite" && e.DATABASE_URL.path === ":memory:") {
    throw new ConfigError("Invalid configuration:\n  WORKERS: each worker would have its own sqlite::memory: database");
  }
  return {
    port: e.PORT,
    host: e.HOST,
    workers: e.WORKERS,
    database: e.DATABASE_URL,
    logLevel: e.LOG_LEVEL,
    logSample: e.LOG_SAMPLE,
    metrics: e.METRICS === "on",
    sqlite: { synchronous: e.SQLITE_SYNCHRONOUS, busyTimeoutMs: e.SQLITE_BUSY_TIMEOUT_MS },
    durability: durabilityOf(e.DATABASE_URL.kind === "postgres" ? e.PG_SYNCHRONOUS_COMMIT : e.SQLITE_SYNCHRONOUS),
    jwtSecret: e.JWT_SECRET ?? null,
    rateLimit: {
      windowMs: e.RATE_LIMIT_WINDOW_MS,
      couponClaims: e.RATE_LIMIT_COUPON_CLAIMS,
      orders: e.RATE_LIMIT_ORDERS,
    },
    // Only an explicit REDIS_URL: its default serves the redis coupon strategy, not worth a surprise dependency.
    sharedRateLimits:
      e.WORKERS > 1 && present.REDIS_URL !== undefined
        ? { redisUrl: e.REDIS_URL, prefix: e.RATE_LIMIT_REDIS_PREFIX }
        : null,
    redisTimeoutMs: e.REDIS_TIMEOUT_MS,
    pg: {
      poolMax: e.PG_POOL_MAX,
      statementTimeoutMs: e.PG_STATEMENT_TIMEOUT_MS,
      connectTimeoutMs: e.PG_CONNECT_TIMEOUT_MS,
      synchronousCommit: e.PG_SYNCHRONOUS_COMMIT,
      couponStrategy: e.COUPON_STRATEGY,
      redisUrl: e.REDIS_URL,
    },
    events: {
      recording: e.EVENTS === "on",
      retentionDays: e.EVENTS_RETENTION_DAYS,
      webhook:
        e.WEBHOOK_URL === undefined || e.WEBHOOK_SECRET === undefined
          ? null
          : { url: e.WEBHOOK_URL, secret: e.WEBHOOK_SECRET, timeoutMs: e.WEBHOOK_TIMEOUT_MS },
      nats:
        e.NATS_URL === undefined
          ? null
          : { url: e.NATS_URL, stream: e.NATS_STREAM, subjectPrefix: e.NATS_SUBJECT_PREFIX },
    },
  };
}
