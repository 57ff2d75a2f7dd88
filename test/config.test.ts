import { describe, expect, test } from "bun:test";
import { ConfigError, loadConfig } from "../src/config.ts";

describe("loadConfig", () => {
  test("defaults serve on 3000 with a SQLite file under ./data", () => {
    expect(loadConfig({})).toEqual({
      port: 3000,
      host: "0.0.0.0",
      workers: 1,
      database: { kind: "sqlite", path: "./data/flashcart.db" },
      logLevel: "info",
      logSample: 1,
      metrics: true,
      sqlite: { synchronous: "NORMAL", busyTimeoutMs: 5000 },
      jwtSecret: null,
      rateLimit: { windowMs: 10_000, couponClaims: 50, orders: 50 },
      sharedRateLimits: null,
      pg: { poolMax: 10, statementTimeoutMs: 5000, couponStrategy: "atomic", redisUrl: "redis://127.0.0.1:6379" },
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
      SQLITE_SYNCHRONOUS: "FULL",
      SQLITE_BUSY_TIMEOUT_MS: "250",
      JWT_SECRET: "s".repeat(32),
      RATE_LIMIT_WINDOW_MS: "1000",
      RATE_LIMIT_COUPON_CLAIMS: "0",
      RATE_LIMIT_ORDERS: "7",
    });
    expect(config).toEqual({
      port: 8080,
      host: "127.0.0.1",
      workers: 1,
      database: { kind: "sqlite", path: "/var/lib/flashcart/db.sqlite" },
      logLevel: "debug",
      logSample: 0.25,
      metrics: false,
      sqlite: { synchronous: "FULL", busyTimeoutMs: 250 },
      jwtSecret: "s".repeat(32),
      rateLimit: { windowMs: 1000, couponClaims: 0, orders: 7 },
      sharedRateLimits: null,
      pg: { poolMax: 10, statementTimeoutMs: 5000, couponStrategy: "atomic", redisUrl: "redis://127.0.0.1:6379" },
    });
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
    [{ SQLITE_BUSY_TIMEOUT_MS: "-5" }, "SQLITE_BUSY_TIMEOUT_MS"],
    [{ JWT_SECRET: "too-short-a-secret" }, "JWT_SECRET"],
    [{ JWT_SECRET: "é".repeat(15) }, "JWT_SECRET"],
    [{ RATE_LIMIT_ORDERS: "lots" }, "RATE_LIMIT_ORDERS"],
  ])("%o is refused, naming %s", (env, variable) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(new RegExp(`^Invalid configuration:\\n  ${variable}: `));
  });
});
