/**
 * The sharded coupon strategy's own promises: a drop is split over min(16, ⌈supply / 8⌉) counter rows
 * on its first claim, a stampede empties every shard and never over-issues, and a sharded drop is
 * refused as sold out by the other strategies (switching strategies can never over-issue). The shared
 * suites (parity, races, property, processes) also run on pg-sharded. Runs with TEST_DATABASE_URL.
 */
import { describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { brokenInvariants } from "../load/invariants.ts";
import { DomainError } from "../src/domain/errors.ts";
import { openPg } from "../src/store/pg/database.ts";
import { PgStore } from "../src/store/pg/store.ts";
import { backends, TEST_DATABASE_URL } from "./support/server.ts";

describe.each(backends.includes("pg-sharded") ? ["pg-sharded"] : [])("%s", () => {
  test("300 users at once on a drop of 100: 13 shards, every one emptied, exactly 100 claimed", async () => {
    const schema = `flashcart_sharded_${process.pid}_${randomBytes(4).toString("hex")}`;
    const open = async (couponStrategy: "sharded" | "atomic") =>
      new PgStore(await openPg({ url: TEST_DATABASE_URL, schema, poolMax: 10, statementTimeoutMs: 10_000 }), {
        couponStrategy,
        events: true,
      });
    const store = await open("sharded");
    const auditor = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {}, connection: { search_path: schema } });
    try {
      const now = Date.now();
      const users: number[] = [];
      for (let i = 0; i < 300; i++) users.push((await store.createUser(`u${i}`, now)).id);
      const drop = {
        name: "drop",
        discountType: "FIXED" as const,
        discountValue: 100,
        maxDiscount: null,
        minOrderAmount: 0,
        issueStartsAt: null,
        issueEndsAt: null,
        validDays: 30,
        totalQuantity: 100,
      };
      const coupon = await store.createCoupon(drop, now);
      const outcomes = await Promise.all(
        users.map((userId) =>
          store.claimCoupon({ userId, couponId: coupon.id, now }).then(
            () => "claimed",
            (error) => (error instanceof DomainError ? error.code : String(error)),
          ),
        ),
      );
      expect(outcomes.filter((o) => o === "claimed").length).toBe(100);
      expect(outcomes.filter((o) => o === "COUPON_SOLD_OUT").length).toBe(200);
      const shards = await auditor<{ total: number; issued: number }[]>`
        SELECT total, issued FROM coupon_shards WHERE coupon_id = ${coupon.id} ORDER BY shard`;
      expect(shards.length).toBe(13);
      expect(shards.every((shard) => shard.issued === shard.total)).toBe(true);
      expect(shards.reduce((sum, shard) => sum + shard.total, 0)).toBe(100);
      expect(await store.getCoupon(coupon.id)).toMatchObject({ issuedQuantity: 100, remainingQuantity: 0 });
      expect(await brokenInvariants(auditor)).toEqual([]);

      // Half a drop claimed by sharded, then the atomic strategy: sold out, never a coupon too many.
      const second = await store.createCoupon({ ...drop, name: "second", totalQuantity: 10 }, now);
      for (const userId of users.slice(0, 5)) await store.claimCoupon({ userId, couponId: second.id, now });
      await store.close();
      const atomic = await open("atomic");
      try {
        await expect(
          atomic.claimCoupon({ userId: users[10] as number, couponId: second.id, now }),
        ).rejects.toMatchObject({
          code: "COUPON_SOLD_OUT",
        });
        expect(await atomic.getCoupon(second.id)).toMatchObject({ issuedQuantity: 5, remainingQuantity: 5 });
        expect(await brokenInvariants(auditor)).toEqual([]);
      } finally {
        await atomic.close();
      }
    } finally {
      await auditor.unsafe(`DROP SCHEMA "${schema}" CASCADE`);
      await auditor.end({ timeout: 5 });
    }
  });
});
