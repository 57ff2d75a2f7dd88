/**
 * Stampedes over a real listening server and a real database file. Every request is in flight at
 * once; afterwards the exact counts are checked over HTTP and in the file itself.
 */
import { describe, expect, test } from "bun:test";
import { brokenEventInvariants, brokenInvariants } from "../load/invariants.ts";
import type { Client, Reply } from "./support/api.ts";
import { describeOnEveryBackend } from "./support/every-backend.ts";

describeOnEveryBackend({ serverPer: "test" }, ({ server, admin: api }) => {
  function tally(replies: Reply[]): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const reply of replies) {
      const key = reply.status < 300 ? String(reply.status) : `${reply.status} ${reply.body?.code}`;
      counts[key] = (counts[key] ?? 0) + 1;
    }
    return counts;
  }

  interface Buyer {
    id: number;
    /** The user's own client, carrying their own token: every race below runs with real user tokens. */
    api: Client;
  }

  /** Creates users as admin, optionally charged with points. */
  async function users(count: number, points = 0): Promise<Buyer[]> {
    const buyers: Buyer[] = [];
    for (let i = 0; i < count; i++) {
      const { id } = await api.user(`u${i}`, points);
      buyers.push({ id, api: await server.as(id) });
    }
    return buyers;
  }

  const scalar = async (sql: string, ...params: number[]) => Object.values((await server.get(sql, ...params)) ?? {})[0];

  describe("first-come coupons", () => {
    test("1,500 users asking twice each at once for 100 coupons: exactly 100 issued, none twice", async () => {
      const coupon = await api.coupon({ totalQuantity: 100 });
      const buyers = await users(1500);

      const replies = await Promise.all(
        buyers.flatMap((b) => [b.api.issue(b.id, coupon.id), b.api.issue(b.id, coupon.id)]),
      );

      const counts = tally(replies);
      // Any other answer first, named with its count (a 503 would say which problem).
      expect(Object.entries(counts).filter(([key]) => key !== "201" && !key.startsWith("409"))).toEqual([]);
      expect(counts["201"]).toBe(100);
      expect((counts["409 COUPON_SOLD_OUT"] ?? 0) + (counts["409 COUPON_ALREADY_ISSUED"] ?? 0)).toBe(2900);

      const winners = replies.filter((r) => r.status === 201).map((r) => r.body.userId);
      expect(new Set(winners).size).toBe(100);
      expect(await scalar("SELECT count(*) FROM user_coupons WHERE coupon_id = ?", coupon.id)).toBe(100);
      expect((await api.get(`/api/coupons/${coupon.id}`)).body).toMatchObject({
        issuedQuantity: 100,
        remainingQuantity: 0,
      });
      expect(await brokenInvariants(server.db)).toEqual([]);
      // Every claim, sold-out drop, order and cancel of the stampede has exactly one event.
      expect(await brokenEventInvariants(server.db)).toEqual([]);
    });

    test("after a drop sells out, every holder is told they hold it and everyone else that none is left", async () => {
      const coupon = await api.coupon({ totalQuantity: 40 });
      const buyers = await users(200);
      const first = await Promise.all(buyers.map((b) => b.api.issue(b.id, coupon.id)));
      const holders = new Set(first.filter((r) => r.status === 201).map((r) => r.body.userId));
      expect(holders.size).toBe(40);

      // Waves after the sell-out: where a store remembers sold-out drops (PostgreSQL), they are
      // answered from what it remembered; the answers must be the database's, for every user.
      for (let wave = 0; wave < 3; wave++) {
        const replies = await Promise.all(buyers.map((b) => b.api.issue(b.id, coupon.id)));
        const expected = buyers.map((b) => (holders.has(b.id) ? "COUPON_ALREADY_ISSUED" : "COUPON_SOLD_OUT"));
        expect(replies.map((r) => `${r.status} ${r.body.code}`)).toEqual(expected.map((code) => `409 ${code}`));
        await Bun.sleep(50);
      }
      expect(await scalar("SELECT count(*) FROM user_coupons WHERE coupon_id = ?", coupon.id)).toBe(40);
    });

    test("one user sending 200 simultaneous claims gets exactly one coupon", async () => {
      const coupon = await api.coupon({ totalQuantity: 100 });
      const [buyer] = (await users(1)) as [Buyer];

      const replies = await Promise.all(Array.from({ length: 200 }, () => buyer.api.issue(buyer.id, coupon.id)));

      expect(tally(replies)).toEqual({ "201": 1, "409 COUPON_ALREADY_ISSUED": 199 });
      expect(await scalar("SELECT count(*) FROM user_coupons WHERE user_id = ?", buyer.id)).toBe(1);
      expect((await api.get(`/api/coupons/${coupon.id}`)).body).toMatchObject({
        issuedQuantity: 1,
        remainingQuantity: 99,
      });
      expect(await brokenInvariants(server.db)).toEqual([]);
      // Every claim, sold-out drop, order and cancel of the stampede has exactly one event.
      expect(await brokenEventInvariants(server.db)).toEqual([]);
    });
  });

  describe("orders", () => {
    test("300 buyers for 50 units: exactly 50 orders and stock 0", async () => {
      const product = await api.product(1000, 50);
      const buyers = await users(300, 10_000);

      const replies = await Promise.all(buyers.map((b) => b.api.order(b.id, [{ productId: product.id, quantity: 1 }])));

      expect(tally(replies)).toEqual({ "201": 50, "409 INSUFFICIENT_STOCK": 250 });
      expect((await api.get(`/api/products/${product.id}`)).body.stock).toBe(0);
      expect(await scalar("SELECT count(*) FROM orders")).toBe(50);
      expect(await scalar("SELECT sum(balance) FROM users")).toBe(300 * 10_000 - 50 * 1000);
      expect(await brokenInvariants(server.db, new Map([[product.id, 50]]))).toEqual([]);
      // Every claim, sold-out drop, order and cancel of the stampede has exactly one event.
      expect(await brokenEventInvariants(server.db)).toEqual([]);
    });

    test("one coupon in 30 simultaneous orders is used exactly once", async () => {
      const product = await api.product(5000, 1000);
      const coupon = await api.coupon({ discountType: "FIXED", discountValue: 2000, totalQuantity: 10 });
      const [buyer] = (await users(1, 1_000_000)) as [Buyer];
      const held = await buyer.api.issue(buyer.id, coupon.id);
      expect(held.status).toBe(201);

      const replies = await Promise.all(
        Array.from({ length: 30 }, () =>
          buyer.api.order(buyer.id, [{ productId: product.id, quantity: 1 }], held.body.id),
        ),
      );

      expect(tally(replies)).toEqual({ "201": 1, "409 COUPON_NOT_USABLE": 29 });
      const paid = replies.find((r) => r.status === 201);
      expect(paid?.body).toMatchObject({ totalAmount: 5000, discountAmount: 2000, paidAmount: 3000 });
      expect(await scalar("SELECT count(*) FROM orders WHERE user_coupon_id = ?", held.body.id)).toBe(1);
      expect(await scalar("SELECT status FROM user_coupons WHERE id = ?", held.body.id)).toBe("USED");
      expect(await brokenInvariants(server.db, new Map([[product.id, 1000]]))).toEqual([]);
      // Every claim, sold-out drop, order and cancel of the stampede has exactly one event.
      expect(await brokenEventInvariants(server.db)).toEqual([]);
    });

    test("1,000 points against 50 simultaneous 100-point orders: exactly 10 paid, balance 0", async () => {
      const product = await api.product(100, 1000);
      const [buyer] = (await users(1, 1000)) as [Buyer];

      const replies = await Promise.all(
        Array.from({ length: 50 }, () => buyer.api.order(buyer.id, [{ productId: product.id, quantity: 1 }])),
      );

      expect(tally(replies)).toEqual({ "201": 10, "409 INSUFFICIENT_POINTS": 40 });
      expect((await buyer.api.get(`/api/users/${buyer.id}/points`)).body).toEqual({ userId: buyer.id, balance: 0 });
      expect(await scalar("SELECT count(*) FROM point_history WHERE user_id = ? AND type = 'USE'", buyer.id)).toBe(10);
      expect((await api.get(`/api/products/${product.id}`)).body.stock).toBe(990);
      expect(await brokenInvariants(server.db, new Map([[product.id, 1000]]))).toEqual([]);
      // Every claim, sold-out drop, order and cancel of the stampede has exactly one event.
      expect(await brokenEventInvariants(server.db)).toEqual([]);
    });

    test("orders and cancels racing on the same products keep stock and points exact", async () => {
      const a = await api.product(300, 40);
      const b = await api.product(700, 40);
      const buyers = await users(40, 5000);
      const items = [
        { productId: b.id, quantity: 2 },
        { productId: a.id, quantity: 1 },
      ];

      const placed = await Promise.all(buyers.map((b) => b.api.order(b.id, items)));
      expect(tally(placed)).toEqual({ "201": 20, "409 INSUFFICIENT_STOCK": 20 });

      const winners = buyers.filter((_, i) => placed[i]?.status === 201);
      const losers = buyers.filter((_, i) => placed[i]?.status !== 201);
      // Every winner cancels their order (twice, concurrently) while every loser tries again.
      const cancels = winners.flatMap((w) => {
        const orderId = placed[buyers.indexOf(w)]?.body.id as number;
        return [w.api.post(`/api/orders/${orderId}/cancel`), w.api.post(`/api/orders/${orderId}/cancel`)];
      });
      const retries = losers.map((l) => l.api.order(l.id, items));
      const [cancelled, retried] = await Promise.all([Promise.all(cancels), Promise.all(retries)]);

      expect(tally(cancelled)).toEqual({ "200": 20, "409 ORDER_NOT_CANCELLABLE": 20 });
      const retriedPaid = retried.filter((r) => r.status === 201).length;
      expect(await scalar("SELECT count(*) FROM orders WHERE status = 'PAID'")).toBe(retriedPaid);
      expect(
        await brokenInvariants(
          server.db,
          new Map([
            [a.id, 40],
            [b.id, 40],
          ]),
        ),
      ).toEqual([]);
    });
  });
});
