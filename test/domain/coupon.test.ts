import { describe, expect, test } from "bun:test";
import {
  assertCouponUsable,
  assertIssuable,
  couponDefinitionProblems,
  discountFor,
  expiryOf,
  type HeldCoupon,
  userCouponStatus,
} from "../../src/domain/coupon.ts";
import { DomainError } from "../../src/domain/errors.ts";
import { DAY_MS } from "../../src/domain/limits.ts";
import type { CouponTerms } from "../../src/domain/model.ts";

const fixed = (value: number, minOrderAmount = 0): CouponTerms => ({
  discountType: "FIXED",
  discountValue: value,
  maxDiscount: null,
  minOrderAmount,
});
const percent = (value: number, maxDiscount: number | null = null): CouponTerms => ({
  discountType: "PERCENT",
  discountValue: value,
  maxDiscount,
  minOrderAmount: 0,
});

function codeOf(run: () => void): string | null {
  try {
    run();
    return null;
  } catch (error) {
    if (error instanceof DomainError) return error.code;
    throw error;
  }
}

describe("discountFor", () => {
  test("FIXED takes its value off, never more than the total", () => {
    expect(discountFor(fixed(1000), 5000)).toBe(1000);
    expect(discountFor(fixed(1000), 1000)).toBe(1000);
    expect(discountFor(fixed(1000), 999)).toBe(999);
  });

  test("PERCENT rounds down", () => {
    expect(discountFor(percent(10), 12_345)).toBe(1234);
    expect(discountFor(percent(33), 100)).toBe(33);
    expect(discountFor(percent(1), 99)).toBe(0);
    expect(discountFor(percent(100), 7777)).toBe(7777);
  });

  test("PERCENT is capped by maxDiscount", () => {
    expect(discountFor(percent(50, 3000), 10_000)).toBe(3000);
    expect(discountFor(percent(50, 3000), 4000)).toBe(2000);
  });

  test("stays exact at the largest possible order", () => {
    const largest = 20 * 100 * 10_000_000;
    expect(discountFor(percent(99), largest)).toBe(Math.floor((largest * 99) / 100));
  });
});

describe("couponDefinitionProblems", () => {
  test("accepts a plain definition", () => {
    expect(couponDefinitionProblems({ discountType: "FIXED", discountValue: 5000 })).toEqual([]);
    expect(couponDefinitionProblems({ discountType: "PERCENT", discountValue: 100, maxDiscount: 10 })).toEqual([]);
  });

  test("names each broken cross-field rule", () => {
    expect(couponDefinitionProblems({ discountType: "PERCENT", discountValue: 101 }).map((p) => p.path)).toEqual([
      "discountValue",
    ]);
    expect(
      couponDefinitionProblems({ discountType: "FIXED", discountValue: 1, maxDiscount: 5 }).map((p) => p.path),
    ).toEqual(["maxDiscount"]);
    expect(
      couponDefinitionProblems({ discountType: "FIXED", discountValue: 1, issueStartsAt: 10, issueEndsAt: 10 }).map(
        (p) => p.path,
      ),
    ).toEqual(["issueEndsAt"]);
  });
});

describe("issue window", () => {
  const window = { issueStartsAt: 1000, issueEndsAt: 2000 };
  test("open from the start (inclusive) to the end (exclusive)", () => {
    expect(codeOf(() => assertIssuable(window, 999))).toBe("COUPON_NOT_ACTIVE");
    expect(codeOf(() => assertIssuable(window, 1000))).toBeNull();
    expect(codeOf(() => assertIssuable(window, 1999))).toBeNull();
    expect(codeOf(() => assertIssuable(window, 2000))).toBe("COUPON_NOT_ACTIVE");
  });
  test("no bounds means always open", () => {
    expect(codeOf(() => assertIssuable({ issueStartsAt: null, issueEndsAt: null }, 0))).toBeNull();
  });
});

describe("expiry and status", () => {
  test("an issued coupon lives validDays days", () => {
    expect(expiryOf(5, 30)).toBe(5 + 30 * DAY_MS);
  });
  test("EXPIRED is derived from the clock; USED stays USED", () => {
    expect(userCouponStatus("AVAILABLE", 100, 99)).toBe("AVAILABLE");
    expect(userCouponStatus("AVAILABLE", 100, 100)).toBe("EXPIRED");
    expect(userCouponStatus("USED", 100, 500)).toBe("USED");
  });
});

describe("assertCouponUsable", () => {
  const held = (over: Partial<HeldCoupon> = {}): HeldCoupon => ({
    ownerId: 7,
    status: "AVAILABLE",
    expiresAt: 1000,
    terms: fixed(100, 5000),
    ...over,
  });
  test("usable by its owner, unused, unexpired, above the minimum", () => {
    expect(codeOf(() => assertCouponUsable(held(), 7, 5000, 999))).toBeNull();
  });
  test("every other case is COUPON_NOT_USABLE", () => {
    expect(codeOf(() => assertCouponUsable(null, 7, 5000, 0))).toBe("COUPON_NOT_USABLE");
    expect(codeOf(() => assertCouponUsable(held(), 8, 5000, 0))).toBe("COUPON_NOT_USABLE");
    expect(codeOf(() => assertCouponUsable(held({ status: "USED" }), 7, 5000, 0))).toBe("COUPON_NOT_USABLE");
    expect(codeOf(() => assertCouponUsable(held(), 7, 5000, 1000))).toBe("COUPON_NOT_USABLE");
    expect(codeOf(() => assertCouponUsable(held(), 7, 4999, 0))).toBe("COUPON_NOT_USABLE");
  });
});
