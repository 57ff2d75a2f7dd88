import { describe, expect, test } from "bun:test";
import { DomainError } from "../../src/domain/errors.ts";
import { assertCancellable, linesInLockOrder, orderTotal, settle } from "../../src/domain/order.ts";
import { toPage } from "../../src/domain/pagination.ts";

describe("order amounts", () => {
  test("the total is Σ quantity × unit price", () => {
    expect(
      orderTotal([
        { quantity: 2, unitPrice: 1500 },
        { quantity: 3, unitPrice: 100 },
      ]),
    ).toBe(3300);
  });

  test("settle applies the coupon and pays the rest in points", () => {
    expect(settle(3300, null)).toEqual({ totalAmount: 3300, discountAmount: 0, paidAmount: 3300 });
    expect(settle(3300, { discountType: "PERCENT", discountValue: 10, maxDiscount: 200, minOrderAmount: 0 })).toEqual({
      totalAmount: 3300,
      discountAmount: 200,
      paidAmount: 3100,
    });
    expect(settle(800, { discountType: "FIXED", discountValue: 1000, maxDiscount: null, minOrderAmount: 0 })).toEqual({
      totalAmount: 800,
      discountAmount: 800,
      paidAmount: 0,
    });
  });
});

test("lines are taken in ascending product id, whatever the request order", () => {
  const lines = [
    { productId: 9, quantity: 1 },
    { productId: 2, quantity: 5 },
    { productId: 4, quantity: 3 },
  ];
  expect(linesInLockOrder(lines).map((l) => l.productId)).toEqual([2, 4, 9]);
  expect(lines.map((l) => l.productId)).toEqual([9, 2, 4]);
});

test("only a PAID order can be cancelled", () => {
  expect(() => assertCancellable("PAID")).not.toThrow();
  expect(() => assertCancellable("CANCELLED")).toThrow(DomainError);
});

test("pages carry a cursor only when more rows exist", () => {
  const rows = [{ id: 5 }, { id: 4 }, { id: 3 }];
  expect(toPage(rows, 2, (r) => r.id)).toEqual({ items: [{ id: 5 }, { id: 4 }], nextCursor: "4" });
  expect(toPage(rows, 3, (r) => r.id)).toEqual({ items: rows, nextCursor: null });
});
