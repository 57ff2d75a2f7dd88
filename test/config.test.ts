import { describe, expect, test } from "bun:test";
import { ConfigError, loadConfig } from "../src/config.ts";
import { durabilityClasses, durabilitySettings } from "../src/durability.ts";

/** A Standard Webhooks secret: whsec_ and 32 bytes in base64. */
const SECRET = `whsec_${Buffer.alloc(32, 7).toString("base64")}`;

describe("loadConfig", () => {
  test("defaults serve on 3000 with a SQLite file under ./data, durable", () => {
    expect(loadConfig({})).toEqual({
      port: 3000,
      host: "0.0.0.0",
      workers: 1,
      database: { kind: "sqlite", path: "./data/flashcart.db" },
      logLevel: "info",
      logSample: 1,
      metrics: true,
      sqlite: { synchronous: "FULL", busyTimeoutMs: 5000 },
      durability: "durable",
      jwtSecret: null,
      rateLimit: { windowMs: 10_000, couponClaims: 50, orders: 50 },
      sharedRateLimits: null,
      redisTimeoutMs: 200,
      pg: {
        poolMax: 10,
        statementTimeoutMs: 5000,
        connectTimeoutMs: 1000,
        synchronousCommit: "on",
        couponStrategy: "atomic",
        redisUrl: "redis://127.0.0.1:6379",
      },
      events: { recording: true, retentionDays: 7, webhook: null, nats: null },
    });
  });

  test("reads every variable", () => {
    const config = loadConfig({
      PORT: "8080",
      HOST: "127.0.0.1",
      DATABASE_URL: "sqlite:/var/lib/flashcart/db.sqlite",
      LOG_LEVEL: "debug",
      LOG_SAMPLE: "0.25",
      METRICS: "off",
      SQLITE_SYNCHRONOUS: "NORMAL",
      SQLITE_BUSY_TIMEOUT_MS: "250",
      JWT_SECRET: "s".repeat(32),
      RATE_LIMIT_WINDOW_MS: "1000",
      RATE_LIMIT_COUPON_CLAIMS: "0",
      RATE_LIMIT_ORDERS: "7",
      PG_POOL_MAX: "3",
      PG_STATEMENT_TIMEOUT_MS: "900",
      PG_CONNECT_TIMEOUT_MS: "1500",
      PG_SYNCHRONOUS_COMMIT: "off",
      COUPON_STRATEGY: "redis",
      REDIS_URL: "redis://cache:6380",
      REDIS_TIMEOUT_MS: "300",
      EVENTS_RETENTION_DAYS: "30",
      WEBHOOK_URL: "https://platform.example/hooks/flashcart",
      WEBHOOK_SECRET: SECRET,
      WEBHOOK_TIMEOUT_MS: "2500",
      NATS_URL: "nats://nats:4222",
      NATS_STREAM: "SHOP_EVENTS",
      NATS_SUBJECT_PREFIX: "shop.events",
    });
    expect(config).toEqual({
      port: 8080,
      host: "127.0.0.1",
      workers: 1,
      database: { kind: "sqlite", path: "/var/lib/flashcart/db.sqlite" },
      logLevel: "debug",
      logSample: 0.25,
      metrics: false,
      sqlite: { synchronous: "NORMAL", busyTimeoutMs: 250 },
      durability: "relaxed",
      jwtSecret: "s".repeat(32),
      rateLimit: { windowMs: 1000, couponClaims: 0, orders: 7 },
      sharedRateLimits: null,
      redisTimeoutMs: 300,
      pg: {
        poolMax: 3,
        statementTimeoutMs: 900,
        connectTimeoutMs: 1500,
        synchronousCommit: "off",
        couponStrategy: "redis",
        redisUrl: "redis://cache:6380",
      },
      events: {
        recording: true,
        retentionDays: 30,
        webhook: { url: "https://platform.example/hooks/flashcart", secret: SECRET, timeoutMs: 2500 },
        nats: { url: "nats://nats:4222", stream: "SHOP_EVENTS", subjectPrefix: "shop.events" },
      },
    });
  });

  test("events: off turns the outbox off; a webhook needs its secret, a sink needs events on", () => {
    expect(loadConfig({ EVENTS: "off" }).events.recording).toBe(false);
    const refused = (env: Record<string, string>) => {
      try {
        loadConfig(env);
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        return (error as Error).message;
      }
      throw new Error(`accepted ${JSON.stringify(env)}`);
    };
    expect(refused({ WEBHOOK_URL: "https://x.example/h" })).toContain("WEBHOOK_URL, WEBHOOK_SECRET");
    expect(refused({ WEBHOOK_URL: "ftp://x.example/h", WEBHOOK_SECRET: SECRET })).toContain("WEBHOOK_URL");
    expect(refused({ WEBHOOK_URL: "https://x.example/h", WEBHOOK_SECRET: "whsec_c2hvcnQ=" })).toContain(
      "24 to 64 bytes",
    );
    expect(refused({ WEBHOOK_URL: "https://x.example/h", WEBHOOK_SECRET: "secret" })).toContain("WEBHOOK_SECRET");
    expect(refused({ EVENTS: "off", NATS_URL: "nats://127.0.0.1:4222" })).toContain("needs EVENTS=on");
    expect(refused({ NATS_URL: "http://127.0.0.1:4222" })).toContain("NATS_URL");
    expect(refused({ EVENTS_RETENTION_DAYS: "0" })).toContain("EVENTS_RETENTION_DAYS");
  });

  test("accepts the in-memory database and sqlite:// spellings; empty means unset", () => {
    expect(loadConfig({ DATABASE_URL: "sqlite::memory:" }).database).toEqual({ kind: "sqlite", path: ":memory:" });
    expect(loadConfig({ DATABASE_URL: "sqlite://./x.db" }).database).toEqual({ kind: "sqlite", path: "./x.db" });
    expect(loadConfig({ PORT: "" }).port).toBe(3000);
  });

  test("postgres:// selects PostgreSQL, with an optional schema, and then needs JWT_SECRET", () => {
    const secret = { JWT_SECRET: "s".repeat(32) };
    expect(
      loadConfig({ ...secret, DATABASE_URL: "postgres://app@db:5432/shop?schema=flash_1&sslmode=require" }).database,
    ).toEqual({
      kind: "postgres",
      url: "postgres://app@db:5432/shop?sslmode=require",
      schema: "flash_1",
    });
    expect(loadConfig({ ...secret, DATABASE_URL: "postgresql://localhost/shop", PG_POOL_MAX: "32" }).pg.poolMax).toBe(
      32,
    );
    expect(() => loadConfig({ DATABASE_URL: "postgres://localhost/shop" })).toThrow(/JWT_SECRET: required/);
  });

  test("the durability class follows the backend in use: SQLITE_SYNCHRONOUS or PG_SYNCHRONOUS_COMMIT", () => {
    const pg = { DATABASE_URL: "postgres://localhost/shop", JWT_SECRET: "s".repeat(32) };
    expect(loadConfig({ SQLITE_SYNCHRONOUS: "NORMAL" }).durability).toBe("relaxed");
    expect(loadConfig({ SQLITE_SYNCHRONOUS: "FULL" }).durability).toBe("durable");
    expect(loadConfig(pg)).toMatchObject({ durability: "durable", pg: { synchronousCommit: "on" } });
    // On PostgreSQL the SQLite setting is irrelevant, and the other way round.
    expect(loadConfig({ ...pg, SQLITE_SYNCHRONOUS: "NORMAL" }).durability).toBe("durable");
    expect(loadConfig({ ...pg, PG_SYNCHRONOUS_COMMIT: "off" }).durability).toBe("relaxed");
    expect(loadConfig({ PG_SYNCHRONOUS_COMMIT: "off" }).durability).toBe("durable");
    // Each class names one setting per backend, and the configuration accepts exactly those.
    for (const name of durabilityClasses) {
      const { sqliteSynchronous, pgSynchronousCommit } = durabilitySettings[name];
      expect(loadConfig({ SQLITE_SYNCHRONOUS: sqliteSynchronous }).durability).toBe(name);
      expect(loadConfig({ ...pg, PG_SYNCHRONOUS_COMMIT: pgSynchronousCommit }).durability).toBe(name);
    }
  });

  test.each([
    [{ DATABASE_URL: "postgres://localhost/db?schema=Bad-Name", JWT_SECRET: "s".repeat(32) }, "DATABASE_URL"],
    [{ COUPON_STRATEGY: "magic" }, "COUPON_STRATEGY"],
    [{ PG_POOL_MAX: "0" }, "PG_POOL_MAX"],
    [{ PORT: "http" }, "PORT"],
    [{ PORT: "70000" }, "PORT"],
    [{ DATABASE_URL: "mysql://localhost/db" }, "DATABASE_URL"],
    [{ DATABASE_URL: "sqlite:" }, "DATABASE_URL"],
    [{ LOG_LEVEL: "loud" }, "LOG_LEVEL"],
    [{ LOG_SAMPLE: "2" }, "LOG_SAMPLE"],
    [{ METRICS: "yes" }, "METRICS"],
    [{ SQLITE_SYNCHRONOUS: "OFF" }, "SQLITE_SYNCHRONOUS"],
    [{ SQLITE_SYNCHRONOUS: "full" }, "SQLITE_SYNCHRONOUS"],
    [{ PG_SYNCHRONOUS_COMMIT: "local" }, "PG_SYNCHRONOUS_COMMIT"],
    [{ PG_SYNCHRONOUS_COMMIT: "true" }, "PG_SYNCHRONOUS_COMMIT"],
    [{ SQLITE_BUSY_TIMEOUT_MS: "-5" }, "SQLITE_BUSY_TIMEOUT_MS"],
    [{ JWT_SECRET: "too-short-a-secret" }, "JWT_SECRET"],
    [{ JWT_SECRET: "é".repeat(15) }, "JWT_SECRET"],
    [{ RATE_LIMIT_ORDERS: "lots" }, "RATE_LIMIT_ORDERS"],
  ])("%o is refused, naming %s", (env, variable) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(new RegExp(`^Invalid configuration:\\n  ${variable}: `));
  });
});
