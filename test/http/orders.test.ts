import { describe, expect, test } from "bun:test";
import { brokenInvariants } from "../../load/invariants.ts";
import { DAY_MS } from "../../src/domain/limits.ts";
import { expectProblem } from "../support/api.ts";
import { describeOnEveryBackend } from "../support/every-backend.ts";

describeOnEveryBackend(({ server, admin }) => {
  /** Everything an order touches, read from the database file. */
  async function snapshot() {
    const all = (sql: string) => server.all(sql);
    return {
      stock: await all("SELECT id, stock FROM products ORDER BY id"),
      balances: await all("SELECT id, balance FROM users ORDER BY id"),
      coupons: await all("SELECT id, status, used_at FROM user_coupons ORDER BY id"),
      issued: await all("SELECT id, issued_quantity FROM coupons ORDER BY id"),
      orders: await all("SELECT id, status FROM orders ORDER BY id"),
      items: await all("SELECT count(*) AS n FROM order_items"),
      history: await all("SELECT count(*) AS n FROM point_history"),
    };
  }

  async function buyer(points: number) {
    const user = await admin.user("buyer", points);
    return { ...user, api: await server.as(user.id) };
  }

  describe("placing an order", () => {
    test("takes stock, pays in points at catalogue prices, writes a USE history row", async () => {
      const me = await buyer(100_000);
      const [p1, p2] = [await admin.product(1500, 10), await admin.product(700, 5)];
      const placed = await me.api.order(me.id, [
        { productId: p2.id, quantity: 3 },
        { productId: p1.id, quantity: 2 },
      ]);
      expect(placed.status).toBe(201);
      expect(placed.body).toEqual({
        id: expect.any(Number),
        userId: me.id,
        status: "PAID",
        items: [
          { productId: p1.id, quantity: 2, unitPrice: 1500 },
          { productId: p2.id, quantity: 3, unitPrice: 700 },
        ],
        totalAmount: 5100,
        discountAmount: 0,
        paidAmount: 5100,
        userCouponId: null,
        createdAt: expect.any(String),
        cancelledAt: null,
      });
      expect((await admin.get(`/api/products/${p1.id}`)).body.stock).toBe(8);
      expect((await admin.get(`/api/products/${p2.id}`)).body.stock).toBe(2);
      expect((await me.api.get(`/api/users/${me.id}/points`)).body.balance).toBe(94_900);
      const history = (await me.api.get(`/api/users/${me.id}/points/history?limit=1`)).body.items[0];
      expect(history).toMatchObject({ type: "USE", amount: 5100, balanceAfter: 94_900, orderId: placed.body.id });
      expect(await me.api.get(`/api/orders/${placed.body.id}`)).toMatchObject({ status: 200, body: placed.body });
    });

    test("a price in the request is refused: prices come from the catalogue", async () => {
      const me = await buyer(10_000);
      const product = await admin.product(5000, 1);
      const reply = await me.api.post("/api/orders", {
        userId: me.id,
        items: [{ productId: product.id, quantity: 1, unitPrice: 1 }],
      });
      expectProblem(reply, 400, "VALIDATION_FAILED");
    });

    test.each([
      ["no items", { items: [] }],
      ["21 lines", { items: Array.from({ length: 21 }, (_, i) => ({ productId: i + 1, quantity: 1 })) }],
      [
        "the same product twice",
        {
          items: [
            { productId: 1, quantity: 1 },
            { productId: 1, quantity: 2 },
          ],
        },
      ],
      ["quantity 0", { items: [{ productId: 1, quantity: 0 }] }],
      ["quantity 101", { items: [{ productId: 1, quantity: 101 }] }],
      ["a string quantity", { items: [{ productId: 1, quantity: "2" }] }],
      ["an unknown field", { items: [{ productId: 1, quantity: 1 }], note: "hi" }],
    ])("refuses %s with 400", async (_, override) => {
      const me = await buyer(0);
      expectProblem(await me.api.post("/api/orders", { userId: me.id, ...override }), 400, "VALIDATION_FAILED");
    });
  });

  describe("coupons on orders", () => {
    test("FIXED takes min(value, total); PERCENT floors and caps at maxDiscount", async () => {
      const me = await buyer(1_000_000);
      const product = await admin.product(3333, 100);
      const fixed = await admin.coupon({ discountType: "FIXED", discountValue: 5000 });
      const percent = await admin.coupon({ discountType: "PERCENT", discountValue: 15, maxDiscount: 1000 });
      const percentUncapped = await admin.coupon({ discountType: "PERCENT", discountValue: 15 });
      const hold = async (couponId: number) => (await me.api.issue(me.id, couponId)).body.id as number;

      const small = await me.api.order(me.id, [{ productId: product.id, quantity: 1 }], await hold(fixed.id));
      expect(small.body).toMatchObject({ totalAmount: 3333, discountAmount: 3333, paidAmount: 0 });
      const capped = await me.api.order(me.id, [{ productId: product.id, quantity: 3 }], await hold(percent.id));
      expect(capped.body).toMatchObject({ totalAmount: 9999, discountAmount: 1000, paidAmount: 8999 });
      const floored = await me.api.order(
        me.id,
        [{ productId: product.id, quantity: 1 }],
        await hold(percentUncapped.id),
      );
      expect(floored.body).toMatchObject({ totalAmount: 3333, discountAmount: 499, paidAmount: 2834 });
      expect((await me.api.get(`/api/users/${me.id}/points`)).body.balance).toBe(1_000_000 - 8999 - 2834);
      // A zero-point order writes no USE row.
      const uses = await server.all(
        "SELECT amount FROM point_history WHERE user_id = ? AND type = 'USE' ORDER BY id",
        me.id,
      );
      expect(uses).toEqual([{ amount: 8999 }, { amount: 2834 }]);
    });

    test("a coupon that cannot be used is 409 COUPON_NOT_USABLE and changes nothing", async () => {
      const me = await buyer(1_000_000);
      const someoneElse = await buyer(1_000_000);
      const product = await admin.product(1000, 100);
      const line = [{ productId: product.id, quantity: 1 }];
      const mine = (await me.api.issue(me.id, (await admin.coupon()).id)).body.id;
      const theirs = (await someoneElse.api.issue(someoneElse.id, (await admin.coupon()).id)).body.id;
      const minimum = (await me.api.issue(me.id, (await admin.coupon({ minOrderAmount: 2000 })).id)).body.id;
      const shortLived = (await me.api.issue(me.id, (await admin.coupon({ validDays: 1 })).id)).body.id;
      expect((await me.api.order(me.id, line, mine)).status).toBe(201);

      const before = await snapshot();
      for (const userCouponId of [mine, theirs, minimum, 999_999]) {
        expectProblem(await me.api.order(me.id, line, userCouponId), 409, "COUPON_NOT_USABLE");
      }
      server.clock.advance(DAY_MS);
      expectProblem(await me.api.order(me.id, line, shortLived), 409, "COUPON_NOT_USABLE");
      server.clock.advance(-DAY_MS);
      expect(await snapshot()).toEqual(before);
      expect((await me.api.order(me.id, [{ productId: product.id, quantity: 2 }], minimum)).status).toBe(201);
    });
  });

  describe("all or nothing", () => {
    test("each failure leaves stock, points, coupons and orders exactly as they were", async () => {
      const me = await buyer(5000);
      const [cheap, scarce] = [await admin.product(1000, 50), await admin.product(1000, 1)];
      const held = (await me.api.issue(me.id, (await admin.coupon({ discountValue: 100 })).id)).body.id;
      const before = await snapshot();

      // Stock runs out on the second line, after the first line's stock was taken.
      const tooMany = [
        { productId: cheap.id, quantity: 1 },
        { productId: scarce.id, quantity: 2 },
      ];
      expectProblem(await me.api.order(me.id, tooMany, held), 409, "INSUFFICIENT_STOCK");
      // Points run out after stock was taken and the coupon marked.
      expectProblem(
        await me.api.order(me.id, [{ productId: cheap.id, quantity: 6 }], held),
        409,
        "INSUFFICIENT_POINTS",
      );
      expectProblem(await me.api.order(me.id, [{ productId: 999_999, quantity: 1 }]), 404, "PRODUCT_NOT_FOUND");
      expectProblem(await admin.order(999_999, [{ productId: cheap.id, quantity: 1 }]), 404, "USER_NOT_FOUND");

      expect(await snapshot()).toEqual(before);
      expect(await brokenInvariants(server.db)).toEqual([]);
    });
  });

  describe("Idempotency-Key on orders", () => {
    test("a retried order is placed once and answered with the same body", async () => {
      const me = await buyer(10_000);
      const product = await admin.product(1000, 10);
      const key = { "idempotency-key": "order-7f3a" };
      const body = { userId: me.id, items: [{ productId: product.id, quantity: 2 }] };
      const first = await me.api.post("/api/orders", body, key);
      const retry = await me.api.post("/api/orders", body, key);
      expect(first.status).toBe(201);
      expect(retry.status).toBe(201);
      expect(retry.body).toEqual(first.body);
      expect(retry.headers.get("idempotent-replayed")).toBe("true");
      expect(await server.get("SELECT count(*) AS n FROM orders WHERE user_id = ?", me.id)).toEqual({ n: 1 });
      expect((await admin.get(`/api/products/${product.id}`)).body.stock).toBe(8);

      const changed = { ...body, items: [{ productId: product.id, quantity: 3 }] };
      expectProblem(await me.api.post("/api/orders", changed, key), 422, "IDEMPOTENCY_KEY_REUSED");
      expect((await admin.get(`/api/products/${product.id}`)).body.stock).toBe(8);
    });

    test("concurrent retries with one key still place one order", async () => {
      const me = await buyer(100_000);
      const product = await admin.product(1000, 100);
      const body = { userId: me.id, items: [{ productId: product.id, quantity: 1 }] };
      const replies = await Promise.all(
        Array.from({ length: 20 }, () => me.api.post("/api/orders", body, { "idempotency-key": "burst" })),
      );
      expect(replies.map((r) => r.status)).toEqual(Array(20).fill(201));
      expect(new Set(replies.map((r) => r.body.id)).size).toBe(1);
      expect((await admin.get(`/api/products/${product.id}`)).body.stock).toBe(99);
    });
  });

  describe("reading and cancelling", () => {
    test("a user's orders are listed newest first, a page at a time", async () => {
      const me = await buyer(100_000);
      const product = await admin.product(100, 100);
      const ids: number[] = [];
      for (let i = 1; i <= 5; i++)
        ids.push((await me.api.order(me.id, [{ productId: product.id, quantity: i }])).body.id);
      const first = await me.api.get(`/api/users/${me.id}/orders?limit=3`);
      expect(first.body.items.map((o: { id: number }) => o.id)).toEqual(ids.slice(2).reverse());
      expect(first.body.items[0].items).toEqual([{ productId: product.id, quantity: 5, unitPrice: 100 }]);
      const rest = await me.api.get(`/api/users/${me.id}/orders?limit=3&cursor=${first.body.nextCursor}`);
      expect(rest.body.items.map((o: { id: number }) => o.id)).toEqual(ids.slice(0, 2).reverse());
      expect(rest.body.nextCursor).toBeNull();
      expectProblem(await admin.get("/api/users/999999/orders"), 404, "USER_NOT_FOUND");
      expectProblem(await me.api.get("/api/orders/999999"), 404, "ORDER_NOT_FOUND");
    });

    test("cancel is the exact inverse: stock back, points refunded, coupon reusable; twice is 409", async () => {
      const me = await buyer(20_000);
      const product = await admin.product(4000, 10);
      const held = (await me.api.issue(me.id, (await admin.coupon({ discountValue: 500 })).id)).body.id;
      const before = await snapshot();
      const order = (await me.api.order(me.id, [{ productId: product.id, quantity: 2 }], held)).body;
      expect(order.paidAmount).toBe(7500);

      const cancelled = await me.api.post(`/api/orders/${order.id}/cancel`);
      expect(cancelled.status).toBe(200);
      expect(cancelled.body).toEqual({ ...order, status: "CANCELLED", cancelledAt: expect.any(String) });
      const after = await snapshot();
      expect([after.stock, after.balances, after.issued]).toEqual([before.stock, before.balances, before.issued]);
      expect(await server.get("SELECT status, used_at FROM user_coupons WHERE id = ?", held)).toEqual({
        status: "AVAILABLE",
        used_at: null,
      });
      const refund = (await me.api.get(`/api/users/${me.id}/points/history?limit=1`)).body.items[0];
      expect(refund).toMatchObject({ type: "REFUND", amount: 7500, balanceAfter: 20_000, orderId: order.id });

      expectProblem(await me.api.post(`/api/orders/${order.id}/cancel`), 409, "ORDER_NOT_CANCELLABLE");
      expectProblem(await me.api.post("/api/orders/999999/cancel"), 404, "ORDER_NOT_FOUND");
      expect((await me.api.order(me.id, [{ productId: product.id, quantity: 1 }], held)).status).toBe(201);
      expect(await brokenInvariants(server.db)).toEqual([]);
    });

    test("a refund that would pass the balance cap is 409 BALANCE_LIMIT_EXCEEDED and changes nothing", async () => {
      const me = await buyer(0);
      for (let i = 0; i < 100; i++) await admin.charge(me.id, 1_000_000);
      const product = await admin.product(2_000_000, 10);
      const held = (await me.api.issue(me.id, (await admin.coupon({ discountValue: 500_000 })).id)).body.id;
      const order = (await me.api.order(me.id, [{ productId: product.id, quantity: 1 }], held)).body;
      expect(order.paidAmount).toBe(1_500_000);
      expect((await admin.charge(me.id, 1_000_000)).balance).toBe(99_500_000);
      expect((await admin.charge(me.id, 500_000)).balance).toBe(100_000_000);
      const before = await snapshot();

      const refused = await me.api.post(`/api/orders/${order.id}/cancel`);
      expectProblem(refused, 409, "BALANCE_LIMIT_EXCEEDED");
      expect(refused.body.detail).toBe("A balance may not exceed 100000000 points; this refund would pass it.");
      expect(await snapshot()).toEqual(before);
      expect((await me.api.get(`/api/orders/${order.id}`)).body).toEqual(order);

      // Once the points are spent below the cap, the same cancel goes through.
      expect((await me.api.order(me.id, [{ productId: product.id, quantity: 1 }])).status).toBe(201);
      const cancelled = await me.api.post(`/api/orders/${order.id}/cancel`);
      expect(cancelled.status).toBe(200);
      expect((await me.api.get(`/api/users/${me.id}/points`)).body.balance).toBe(99_500_000);
      expect(await brokenInvariants(server.db)).toEqual([]);
    });
  });
});
