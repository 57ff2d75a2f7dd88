/**
 * Model-based property test: random sequences of charge / claim / order / cancel run against a real
 * server and a plain in-memory model of the rules. After every step the service must answer what the
 * model predicts, show the same balances, stock and coupon counts, and keep every invariant.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { brokenInvariants } from "../load/invariants.ts";
import type { Client, Reply } from "./support/api.ts";
import { backends, startServer } from "./support/server.ts";

describe.each(backends)("on %s", (backend) => {
  const PRODUCTS = [
    { price: 1099, stock: 5 },
    { price: 2549, stock: 8 },
    { price: 7003, stock: 3 },
  ];
  type CouponSpec = {
    discountType: "FIXED" | "PERCENT";
    discountValue: number;
    maxDiscount?: number;
    minOrderAmount: number;
    totalQuantity: number;
  };
  const COUPONS: CouponSpec[] = [
    { discountType: "PERCENT", discountValue: 15, maxDiscount: 2000, minOrderAmount: 0, totalQuantity: 2 },
    { discountType: "FIXED", discountValue: 3000, minOrderAmount: 5000, totalQuantity: 2 },
  ];
  const USERS = 3;
  const STARTING_POINTS = 20_000;

  type Op =
    | { kind: "charge"; user: number; amount: number }
    | { kind: "claim"; user: number; coupon: number }
    | { kind: "order"; user: number; lines: { product: number; quantity: number }[]; coupon: "none" | "own" | "other" }
    | { kind: "cancel"; pick: number };

  const opArb: fc.Arbitrary<Op> = fc.oneof(
    fc.record({
      kind: fc.constant("charge" as const),
      user: fc.nat(USERS - 1),
      amount: fc.integer({ min: 1, max: 30_000 }),
    }),
    fc.record({ kind: fc.constant("claim" as const), user: fc.nat(USERS - 1), coupon: fc.nat(COUPONS.length - 1) }),
    fc.record({
      kind: fc.constant("order" as const),
      user: fc.nat(USERS - 1),
      lines: fc.uniqueArray(
        fc.record({ product: fc.nat(PRODUCTS.length - 1), quantity: fc.integer({ min: 1, max: 3 }) }),
        {
          minLength: 1,
          maxLength: PRODUCTS.length,
          selector: (line) => line.product,
        },
      ),
      coupon: fc.constantFrom("none" as const, "own" as const, "own" as const, "other" as const),
    }),
    fc.record({ kind: fc.constant("cancel" as const), pick: fc.nat(20) }),
  );

  interface Holding {
    id: number;
    owner: number;
    coupon: number;
    used: boolean;
  }
  interface ModelOrder {
    id: number;
    user: number;
    paid: boolean;
    lines: { product: number; quantity: number }[];
    paidAmount: number;
    holding: Holding | null;
  }

  /** The rules, restated independently of src/domain. */
  function discount(spec: CouponSpec, total: number): number {
    if (spec.discountType === "FIXED") return Math.min(spec.discountValue, total);
    const off = Math.floor((total * spec.discountValue) / 100);
    return spec.maxDiscount === undefined ? off : Math.min(off, spec.maxDiscount);
  }

  test("random sequences of charge, claim, order and cancel agree with the model", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 25 }), async (ops) => {
        const server = await startServer({ backend });
        try {
          const admin = server.admin;
          const users: { id: number; api: Client }[] = [];
          for (let u = 0; u < USERS; u++) {
            const { id } = await admin.user(`user${u}`, STARTING_POINTS);
            users.push({ id, api: await server.as(id) });
          }
          const products: { id: number }[] = [];
          for (const p of PRODUCTS) products.push(await admin.product(p.price, p.stock));
          const coupons: { id: number }[] = [];
          for (const c of COUPONS) coupons.push(await admin.coupon({ name: "drop", ...c }));
          const initialStock = new Map(products.map((p, i) => [p.id, PRODUCTS[i]?.stock as number]));

          const balance = users.map(() => STARTING_POINTS);
          const stock = PRODUCTS.map((p) => p.stock);
          const issued = COUPONS.map(() => 0);
          const holdings: Holding[] = [];
          const orders: ModelOrder[] = [];

          for (const op of ops) {
            let reply: Reply;
            let expected: number | string;
            if (op.kind === "charge") {
              const u = users[op.user] as (typeof users)[0];
              reply = await u.api.post(`/api/users/${u.id}/points/charge`, { amount: op.amount });
              expected = 200;
              balance[op.user] = (balance[op.user] as number) + op.amount;
            } else if (op.kind === "claim") {
              const u = users[op.user] as (typeof users)[0];
              reply = await u.api.issue(u.id, (coupons[op.coupon] as { id: number }).id);
              if (holdings.some((h) => h.owner === op.user && h.coupon === op.coupon))
                expected = "COUPON_ALREADY_ISSUED";
              else if ((issued[op.coupon] as number) >= (COUPONS[op.coupon] as CouponSpec).totalQuantity) {
                expected = "COUPON_SOLD_OUT";
              } else {
                expected = 201;
                issued[op.coupon] = (issued[op.coupon] as number) + 1;
                holdings.push({ id: reply.body.id, owner: op.user, coupon: op.coupon, used: false });
              }
            } else if (op.kind === "order") {
              const u = users[op.user] as (typeof users)[0];
              const holding =
                op.coupon === "own"
                  ? (holdings.find((h) => h.owner === op.user && !h.used) ?? holdings.find((h) => h.owner === op.user))
                  : op.coupon === "other"
                    ? holdings.find((h) => h.owner !== op.user)
                    : undefined;
              const items = op.lines.map((l) => ({
                productId: (products[l.product] as { id: number }).id,
                quantity: l.quantity,
              }));
              reply = await u.api.order(u.id, items, holding?.id);
              const total = op.lines.reduce(
                (sum, l) => sum + l.quantity * (PRODUCTS[l.product] as { price: number }).price,
                0,
              );
              const spec = holding === undefined ? null : (COUPONS[holding.coupon] as CouponSpec);
              const paidAmount = total - (spec === null ? 0 : discount(spec, total));
              if (
                holding !== undefined &&
                (holding.owner !== op.user || holding.used || total < (spec as CouponSpec).minOrderAmount)
              ) {
                expected = "COUPON_NOT_USABLE";
              } else if (op.lines.some((l) => (stock[l.product] as number) < l.quantity)) {
                expected = "INSUFFICIENT_STOCK";
              } else if (paidAmount > (balance[op.user] as number)) {
                expected = "INSUFFICIENT_POINTS";
              } else {
                expected = 201;
                for (const l of op.lines) stock[l.product] = (stock[l.product] as number) - l.quantity;
                balance[op.user] = (balance[op.user] as number) - paidAmount;
                if (holding !== undefined) holding.used = true;
                orders.push({
                  id: reply.body.id,
                  user: op.user,
                  paid: true,
                  lines: op.lines,
                  paidAmount,
                  holding: holding ?? null,
                });
                expect(reply.body).toMatchObject({ totalAmount: total, paidAmount });
              }
            } else {
              const order = orders[op.pick % Math.max(orders.length, 1)];
              if (order === undefined) continue;
              const owner = users[order.user] as (typeof users)[0];
              reply = await owner.api.post(`/api/orders/${order.id}/cancel`);
              if (!order.paid) expected = "ORDER_NOT_CANCELLABLE";
              else {
                expected = 200;
                order.paid = false;
                for (const l of order.lines) stock[l.product] = (stock[l.product] as number) + l.quantity;
                balance[order.user] = (balance[order.user] as number) + order.paidAmount;
                if (order.holding !== null) order.holding.used = false;
              }
            }

            expect([op.kind, typeof expected === "number" ? reply.status : reply.body?.code]).toEqual([
              op.kind,
              expected,
            ]);
            for (const [i, u] of users.entries()) {
              expect((await u.api.get(`/api/users/${u.id}/points`)).body.balance).toBe(balance[i] as number);
            }
            for (const [i, p] of products.entries()) {
              expect((await server.anonymous.get(`/api/products/${p.id}`)).body.stock).toBe(stock[i] as number);
            }
            for (const [i, c] of coupons.entries()) {
              expect((await server.anonymous.get(`/api/coupons/${c.id}`)).body.issuedQuantity).toBe(
                issued[i] as number,
              );
            }
            expect(await brokenInvariants(server.db, initialStock)).toEqual([]);
          }
        } finally {
          await server.stop();
        }
      }),
      { numRuns: backend === "sqlite" ? 100 : 30 },
    );
  }, 180_000);
});
