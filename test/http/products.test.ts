import { describe, expect, test } from "bun:test";
import { DAY_MS } from "../../src/domain/limits.ts";
import { expectProblem } from "../support/api.ts";
import { describeOnEveryBackend } from "../support/every-backend.ts";
import { startServer } from "../support/server.ts";

describeOnEveryBackend(({ backend, server, admin }) => {
  describe("catalogue", () => {
    test("POST /api/products creates; GET reads it back, without a token", async () => {
      const created = await admin.post("/api/products", { name: "Keyboard", price: 45_000, stock: 10 });
      expect(created).toMatchObject({ status: 201, body: { name: "Keyboard", price: 45_000, stock: 10 } });
      expect(await server.anonymous.get(`/api/products/${created.body.id}`)).toMatchObject({
        status: 200,
        body: created.body,
      });
    });

    test("price 1..10,000,000 and stock 0..1,000,000, integers only", async () => {
      const bad = [
        { name: "p", price: 0, stock: 1 },
        { name: "p", price: 10_000_001, stock: 1 },
        { name: "p", price: 1.5, stock: 1 },
        { name: "p", price: 1, stock: -1 },
        { name: "p", price: 1, stock: 1_000_001 },
        { name: "p", price: "1", stock: 1 },
        { name: "p", price: 1 },
        { name: "p", price: 1, stock: 1, id: 5 },
      ];
      for (const body of bad) expectProblem(await admin.post("/api/products", body), 400, "VALIDATION_FAILED");
      expect((await admin.post("/api/products", { name: "edge", price: 10_000_000, stock: 0 })).status).toBe(201);
    });

    test("an unknown product is 404 PRODUCT_NOT_FOUND", async () => {
      expectProblem(await server.anonymous.get("/api/products/424242"), 404, "PRODUCT_NOT_FOUND");
    });

    test("GET /api/products pages through every product in id order", async () => {
      const fresh = await startServer({ backend });
      try {
        const ids: number[] = [];
        for (let i = 0; i < 5; i++) ids.push((await fresh.admin.product(100 + i, 1, `p${i}`)).id);
        const first = await fresh.anonymous.get("/api/products?limit=2");
        expect(first.body.items.map((p: { id: number }) => p.id)).toEqual(ids.slice(0, 2));
        const second = await fresh.anonymous.get(`/api/products?limit=2&cursor=${first.body.nextCursor}`);
        expect(second.body.items.map((p: { id: number }) => p.id)).toEqual(ids.slice(2, 4));
        const last = await fresh.anonymous.get(`/api/products?limit=2&cursor=${second.body.nextCursor}`);
        expect(last.body).toEqual({ items: [{ id: ids[4], name: "p4", price: 104, stock: 1 }], nextCursor: null });
        expect((await fresh.anonymous.get("/api/products")).body.items).toHaveLength(5);
      } finally {
        await fresh.stop();
      }
    });
  });

  describe("GET /api/products/popular", () => {
    test("ranks by quantity in PAID orders of the last `days` days", async () => {
      const s = await startServer({ backend });
      try {
        const [a, b, c] = [
          await s.admin.product(10, 100, "a"),
          await s.admin.product(20, 100, "b"),
          await s.admin.product(30, 100, "c"),
        ];
        const buyer = await s.admin.user("buyer", 1_000_000);
        const order = (lines: [number, number][]) =>
          s.admin.order(
            buyer.id,
            lines.map(([productId, quantity]) => ({ productId, quantity })),
          );

        // Five days ago: 50 × c, outside the default 3-day window.
        s.clock.advance(-5 * DAY_MS);
        expect((await order([[c.id, 50]])).status).toBe(201);
        s.clock.advance(5 * DAY_MS);
        // Now: 3 × a, 5 × b, and 9 × a in an order that is then cancelled.
        expect(
          (
            await order([
              [a.id, 3],
              [b.id, 5],
            ])
          ).status,
        ).toBe(201);
        const cancelled = await order([[a.id, 9]]);
        expect((await s.admin.post(`/api/orders/${cancelled.body.id}/cancel`)).status).toBe(200);

        expect((await s.anonymous.get("/api/products/popular")).body).toEqual({
          items: [
            { productId: b.id, name: "b", price: 20, soldQuantity: 5 },
            { productId: a.id, name: "a", price: 10, soldQuantity: 3 },
          ],
        });
        expect((await s.anonymous.get("/api/products/popular?days=7&limit=2")).body.items).toEqual([
          { productId: c.id, name: "c", price: 30, soldQuantity: 50 },
          { productId: b.id, name: "b", price: 20, soldQuantity: 5 },
        ]);
        for (const query of ["days=0", "days=31", "limit=0", "limit=21", "days=x"]) {
          expectProblem(await s.anonymous.get(`/api/products/popular?${query}`), 400, "VALIDATION_FAILED");
        }
      } finally {
        await s.stop();
      }
    });
  });
});
