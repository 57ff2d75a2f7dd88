/**
 * The redis coupon strategy's own promises: Redis mirrors PostgreSQL (remaining supply and holders),
 * is rebuilt from it at start-up, reloads a drop it lost, gives a reservation back when the
 * PostgreSQL write refuses it, and comes down to the truth when it had slots PostgreSQL has not.
 * Runs when TEST_DATABASE_URL names a PostgreSQL server.
 */

import { describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { RedisClient } from "bun";
import { DomainError } from "../src/domain/errors.ts";
import { RedisLink } from "../src/redis-link.ts";
import { openPg } from "../src/store/pg/database.ts";
import { redisPrefixOf } from "../src/store/pg/redis-gate.ts";
import { PgStore } from "../src/store/pg/store.ts";
import { backends, TEST_DATABASE_URL } from "./support/server.ts";

const codeOf = async (run: Promise<unknown>) =>
  run.then(
    () => "issued",
    (error) => (error instanceof DomainError ? error.code : String(error)),
  );

describe.each(backends.includes("pg-redis") ? ["pg-redis"] : [])("%s", () => {
  test("Redis mirrors PostgreSQL, is rebuilt at start-up, reloads what it lost, and hands back refused reservations", async () => {
    const schema = `flashcart_redis_${process.pid}_${randomBytes(4).toString("hex")}`;
    const redisUrl = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
    const redis = new RedisClient(redisUrl);
    let prefix = "";
    const open = async () => {
      const db = await openPg({ url: TEST_DATABASE_URL, schema, poolMax: 4, statementTimeoutMs: 5000 });
      prefix = await redisPrefixOf(db.$client);
      return new PgStore(db, {
        couponStrategy: "redis",
        events: true,
        redis: new RedisLink(redisUrl),
        redisPrefix: prefix,
      });
    };
    let store = await open();
    const remaining = async (couponId: number) =>
      Number(await redis.send("GET", [`${prefix}coupon:${couponId}:remaining`]));
    const holders = async (couponId: number) =>
      ((await redis.send("SMEMBERS", [`${prefix}coupon:${couponId}:users`])) as string[])
        .map(Number)
        .sort((a, b) => a - b);
    try {
      const now = Date.now();
      const users = [];
      for (let i = 0; i < 4; i++) users.push((await store.createUser(`u${i}`, now)).id);
      const coupon = await store.createCoupon(
        {
          name: "drop",
          discountType: "FIXED",
          discountValue: 100,
          maxDiscount: null,
          minOrderAmount: 0,
          issueStartsAt: null,
          issueEndsAt: null,
          validDays: 30,
          totalQuantity: 3,
        },
        now,
      );
      const claim = (userId: number) => codeOf(store.claimCoupon({ userId, couponId: coupon.id, now }));
      const [a, b, c, d] = users as [number, number, number, number];

      expect(await remaining(coupon.id)).toBe(3);
      expect([await claim(a), await claim(b), await claim(a)]).toEqual(["issued", "issued", "COUPON_ALREADY_ISSUED"]);
      expect([await remaining(coupon.id), await holders(coupon.id)]).toEqual([1, [a, b].sort((x, y) => x - y)]);

      // Redis loses the drop (a restart without persistence): the next claim reloads it from PostgreSQL.
      await redis.send("DEL", [`${prefix}coupon:${coupon.id}:remaining`, `${prefix}coupon:${coupon.id}:users`]);
      expect(await claim(b)).toBe("COUPON_ALREADY_ISSUED");
      expect(await remaining(coupon.id)).toBe(1);

      // Redis wrongly forgets that b holds one: PostgreSQL refuses, and the slot is handed back.
      await redis.send("SREM", [`${prefix}coupon:${coupon.id}:users`, String(b)]);
      expect(await claim(b)).toBe("COUPON_ALREADY_ISSUED");
      expect([await remaining(coupon.id), await holders(coupon.id)]).toEqual([1, [a, b].sort((x, y) => x - y)]);

      // Redis drifts: a restart rebuilds it from PostgreSQL.
      await redis.send("SET", [`${prefix}coupon:${coupon.id}:remaining`, "100"]);
      await store.close();
      store = await open();
      await store.rebuildRedis();
      expect(await remaining(coupon.id)).toBe(1);
      expect([await claim(c), await claim(d)]).toEqual(["issued", "COUPON_SOLD_OUT"]);
      expect((await store.getCoupon(coupon.id)).issuedQuantity).toBe(3);
      expect(await remaining(coupon.id)).toBe(0);

      // Redis has slots PostgreSQL does not (a load raced claims under way elsewhere): the claims reach
      // PostgreSQL, which answers "none left", and each such answer takes one surplus slot away.
      await redis.send("SET", [`${prefix}coupon:${coupon.id}:remaining`, "2"]);
      expect([await claim(d), await remaining(coupon.id)]).toEqual(["COUPON_SOLD_OUT", 1]);
      expect([await claim(d), await remaining(coupon.id)]).toEqual(["COUPON_SOLD_OUT", 0]);
      expect(await holders(coupon.id)).toEqual([a, b, c].sort((x, y) => x - y));
      expect((await store.getCoupon(coupon.id)).issuedQuantity).toBe(3);
    } finally {
      await store.close();
      const keys = (await redis.send("KEYS", [`${prefix}*`])) as string[];
      if (keys.length > 0) await redis.send("DEL", keys);
      redis.close();
      const { default: postgres } = await import("postgres");
      const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
      await admin.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.end({ timeout: 5 });
    }
  });
});
