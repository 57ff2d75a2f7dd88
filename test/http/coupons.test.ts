import { describe, expect, test } from "bun:test";
import { brokenInvariants } from "../../load/invariants.ts";
import { DAY_MS } from "../../src/domain/limits.ts";
import { expectProblem } from "../support/api.ts";
import { describeOnEveryBackend } from "../support/every-backend.ts";
import { startServer } from "../support/server.ts";

describeOnEveryBackend(({ backend, server, admin }) => {
  const iso = (ms: number) => new Date(ms).toISOString();

  describe("POST /api/coupons", () => {
    test("creates a drop with defaults and shows its supply", async () => {
      const created = await admin.post("/api/coupons", {
        name: "10% off",
        discountType: "PERCENT",
        discountValue: 10,
        maxDiscount: 5000,
        totalQuantity: 3,
      });
      expect(created.status).toBe(201);
      expect(created.body).toEqual({
        id: expect.any(Number),
        name: "10% off",
        discountType: "PERCENT",
        discountValue: 10,
        maxDiscount: 5000,
        minOrderAmount: 0,
        issueStartsAt: null,
        issueEndsAt: null,
        validDays: 30,
        totalQuantity: 3,
        issuedQuantity: 0,
        remainingQuantity: 3,
        createdAt: expect.any(String),
      });
      expect(await server.anonymous.get(`/api/coupons/${created.body.id}`)).toMatchObject({
        status: 200,
        body: created.body,
      });
    });

    test("issue window times are stored as UTC instants", async () => {
      const created = await admin.coupon({
        issueStartsAt: "2030-01-01T09:00:00+09:00",
        issueEndsAt: "2030-01-02T00:00:00Z",
      });
      expect(created).toMatchObject({
        issueStartsAt: "2030-01-01T00:00:00.000Z",
        issueEndsAt: "2030-01-02T00:00:00.000Z",
      });
    });

    test.each([
      ["PERCENT over 100", { discountType: "PERCENT", discountValue: 101 }],
      ["maxDiscount on FIXED", { discountType: "FIXED", discountValue: 10, maxDiscount: 5 }],
      [
        "window ending before it starts",
        { issueStartsAt: "2030-01-02T00:00:00Z", issueEndsAt: "2030-01-01T00:00:00Z" },
      ],
      ["a date that is not ISO-8601", { issueStartsAt: "tomorrow" }],
      ["zero quantity", { totalQuantity: 0 }],
      ["quantity over 10,000,000", { totalQuantity: 10_000_001 }],
      ["validDays 0", { validDays: 0 }],
      ["validDays 366", { validDays: 366 }],
      ["an unknown discount type", { discountType: "BOGO" }],
      ["an unknown field", { stackable: true }],
    ])("refuses %s", async (_, override) => {
      const body = { name: "c", discountType: "FIXED", discountValue: 100, totalQuantity: 1, ...override };
      expectProblem(await admin.post("/api/coupons", body), 400, "VALIDATION_FAILED");
    });

    test("an unknown coupon is 404 COUPON_NOT_FOUND", async () => {
      expectProblem(await server.anonymous.get("/api/coupons/777777"), 404, "COUPON_NOT_FOUND");
    });
  });

  describe("claiming", () => {
    test("both paths issue an AVAILABLE coupon valid for validDays; a second claim is 409", async () => {
      const coupon = await admin.coupon({ validDays: 7, totalQuantity: 10 });
      const user = await admin.user("claimer");
      const me = await server.as(user.id);
      const now = server.clock.now();

      const first = await me.post(`/api/coupons/${user.id}`, { couponId: coupon.id });
      expect(first).toMatchObject({ status: 201 });
      expect(first.body).toEqual({
        id: expect.any(Number),
        userId: user.id,
        couponId: coupon.id,
        status: "AVAILABLE",
        issuedAt: iso(now),
        expiresAt: iso(now + 7 * DAY_MS),
        usedAt: null,
      });
      expectProblem(await me.post(`/api/coupons/${user.id}`, { couponId: coupon.id }), 409, "COUPON_ALREADY_ISSUED");
      expectProblem(
        await me.post(`/api/users/${user.id}/coupons`, { couponId: coupon.id }),
        409,
        "COUPON_ALREADY_ISSUED",
      );

      const other = await admin.user("other");
      const viaUserPath = await (await server.as(other.id)).post(`/api/users/${other.id}/coupons`, {
        couponId: coupon.id,
      });
      expect(viaUserPath).toMatchObject({ status: 201, body: { userId: other.id, couponId: coupon.id } });
      expect((await admin.get(`/api/coupons/${coupon.id}`)).body).toMatchObject({
        issuedQuantity: 2,
        remainingQuantity: 8,
      });
    });

    test("when the supply is gone the next claim is 409 COUPON_SOLD_OUT and nothing is written", async () => {
      const coupon = await admin.coupon({ totalQuantity: 1 });
      const [a, b] = [await admin.user("a"), await admin.user("b")];
      expect((await admin.issue(a.id, coupon.id)).status).toBe(201);
      expectProblem(await admin.issue(b.id, coupon.id), 409, "COUPON_SOLD_OUT");
      expect(await server.get("SELECT count(*) AS n FROM user_coupons WHERE coupon_id = ?", coupon.id)).toEqual({
        n: 1,
      });
      expect(await brokenInvariants(server.db)).toEqual([]);
    });

    test("claims outside the issue window are 409 COUPON_NOT_ACTIVE", async () => {
      const now = server.clock.now();
      const coupon = await admin.coupon({ issueStartsAt: iso(now + 1000), issueEndsAt: iso(now + 2000) });
      const user = await admin.user("early");
      expectProblem(await admin.issue(user.id, coupon.id), 409, "COUPON_NOT_ACTIVE");
      server.clock.advance(2000);
      expectProblem(await admin.issue(user.id, coupon.id), 409, "COUPON_NOT_ACTIVE");
      server.clock.advance(-1000);
      expect((await admin.issue(user.id, coupon.id)).status).toBe(201);
      server.clock.advance(-1000);
    });

    test("unknown coupons and users are 404; bad bodies are 400", async () => {
      const coupon = await admin.coupon();
      const user = await admin.user("u");
      expectProblem(await admin.issue(user.id, 999_999), 404, "COUPON_NOT_FOUND");
      expectProblem(await admin.issue(999_999, coupon.id), 404, "USER_NOT_FOUND");
      for (const body of [{}, { couponId: "1" }, { couponId: 0 }, { couponId: 1, extra: 1 }]) {
        expectProblem(await admin.post(`/api/coupons/${user.id}`, body), 400, "VALIDATION_FAILED");
      }
    });
  });

  describe("GET /api/users/:userId/coupons", () => {
    test("lists the user's coupons with their drop, filtered by status, EXPIRED derived from the clock", async () => {
      const s = await startServer({ backend });
      try {
        const user = await s.admin.user("holder", 100_000);
        const me = await s.as(user.id);
        const shortLived = await s.admin.coupon({ name: "short", validDays: 1 });
        const longLived = await s.admin.coupon({ name: "long", validDays: 30 });
        const toUse = await s.admin.coupon({ name: "use" });
        const product = await s.admin.product(5000, 10);
        const held = [];
        for (const c of [shortLived, longLived, toUse]) held.push((await me.issue(user.id, c.id)).body);
        expect((await me.order(user.id, [{ productId: product.id, quantity: 1 }], held[2].id)).status).toBe(201);
        s.clock.advance(DAY_MS);

        const all = await me.get(`/api/users/${user.id}/coupons`);
        expect(all.status).toBe(200);
        expect(
          all.body.items.map((i: { status: string; coupon: { name: string } }) => [i.coupon.name, i.status]),
        ).toEqual([
          ["short", "EXPIRED"],
          ["long", "AVAILABLE"],
          ["use", "USED"],
        ]);
        expect(all.body.items[2].usedAt).toEqual(expect.any(String));
        for (const [status, name] of [
          ["EXPIRED", "short"],
          ["AVAILABLE", "long"],
          ["USED", "use"],
        ]) {
          const filtered = await me.get(`/api/users/${user.id}/coupons?status=${status}`);
          expect(filtered.body.items.map((i: { coupon: { name: string } }) => i.coupon.name)).toEqual([name]);
        }
        expectProblem(await me.get(`/api/users/${user.id}/coupons?status=LOST`), 400, "VALIDATION_FAILED");
        expectProblem(await s.admin.get("/api/users/999999/coupons"), 404, "USER_NOT_FOUND");
      } finally {
        await s.stop();
      }
    });
  });
});
