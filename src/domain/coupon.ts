import { refused } from "./errors.ts";
import { DAY_MS, limits } from "./limits.ts";
import type { Coupon, CouponTerms, UserCouponStatus } from "./model.ts";
import { isoOf, isoOrNull } from "./time.ts";

/**
 * The coupon rules, in one place for every backend.
 *
 * FIXED takes `discountValue` won off, never more than the order total.
 * PERCENT takes floor(total × value / 100), capped by `maxDiscount` when one is set.
 */
export function discountFor(terms: CouponTerms, totalAmount: number): number {
  if (terms.discountType === "FIXED") return Math.min(terms.discountValue, totalAmount);
  const percentOff = Math.floor((totalAmount * terms.discountValue) / 100);
  return terms.maxDiscount === null ? percentOff : Math.min(percentOff, terms.maxDiscount);
}

/** Rules that relate several fields of a coupon definition; each problem is a readable sentence. */
export function couponDefinitionProblems(input: {
  discountType: CouponTerms["discountType"];
  discountValue: number;
  maxDiscount?: number | null | undefined;
  issueStartsAt?: number | null | undefined;
  issueEndsAt?: number | null | undefined;
}): { path: string; message: string }[] {
  const problems: { path: string; message: string }[] = [];
  if (input.discountType === "PERCENT" && input.discountValue > limits.maxPercentDiscount) {
    problems.push({ path: "discountValue", message: `A PERCENT discount is at most ${limits.maxPercentDiscount}.` });
  }
  if (input.discountType === "FIXED" && input.maxDiscount != null) {
    problems.push({ path: "maxDiscount", message: "maxDiscount applies to PERCENT coupons only." });
  }
  if (input.issueStartsAt != null && input.issueEndsAt != null && input.issueEndsAt <= input.issueStartsAt) {
    problems.push({ path: "issueEndsAt", message: "issueEndsAt must be after issueStartsAt." });
  }
  return problems;
}

export interface IssueWindow {
  issueStartsAt: number | null;
  issueEndsAt: number | null;
}

/** A drop as created (timestamps in epoch milliseconds): everything but its claimed count, and never changed. */
export interface CouponDefinition extends CouponTerms, IssueWindow {
  id: number;
  name: string;
  validDays: number;
  totalQuantity: number;
  createdAt: number;
}

/** A drop as the API shows it, with `issuedQuantity` of its supply claimed. */
export function couponOf(drop: CouponDefinition, issuedQuantity: number): Coupon {
  return {
    id: drop.id,
    name: drop.name,
    discountType: drop.discountType,
    discountValue: drop.discountValue,
    maxDiscount: drop.maxDiscount,
    minOrderAmount: drop.minOrderAmount,
    issueStartsAt: isoOrNull(drop.issueStartsAt),
    issueEndsAt: isoOrNull(drop.issueEndsAt),
    validDays: drop.validDays,
    totalQuantity: drop.totalQuantity,
    issuedQuantity,
    remainingQuantity: drop.totalQuantity - issuedQuantity,
    createdAt: isoOf(drop.createdAt),
  };
}

/** A coupon can be claimed from `issueStartsAt` (inclusive) until `issueEndsAt` (exclusive). */
export function assertIssuable(window: IssueWindow, now: number): void {
  if (window.issueStartsAt !== null && now < window.issueStartsAt) throw refused.notStarted();
  if (window.issueEndsAt !== null && now >= window.issueEndsAt) throw refused.ended();
}

export function expiryOf(issuedAt: number, validDays: number): number {
  return issuedAt + validDays * DAY_MS;
}

/** Stores keep AVAILABLE or USED; EXPIRED is derived from the clock, so no job has to flip rows. */
export function userCouponStatus(stored: "AVAILABLE" | "USED", expiresAt: number, now: number): UserCouponStatus {
  return stored === "AVAILABLE" && now >= expiresAt ? "EXPIRED" : stored;
}

export interface HeldCoupon {
  ownerId: number;
  status: "AVAILABLE" | "USED";
  expiresAt: number;
  terms: CouponTerms;
}

/** A user coupon pays for an order only if the buyer owns it, it is unused and unexpired, and the order is big enough. */
export function assertCouponUsable(held: HeldCoupon | null, buyerId: number, totalAmount: number, now: number): void {
  if (held === null || held.ownerId !== buyerId) throw refused.couponNotOwned();
  const status = userCouponStatus(held.status, held.expiresAt, now);
  if (status === "USED") throw refused.couponUsed();
  if (status === "EXPIRED") throw refused.couponExpired();
  if (totalAmount < held.terms.minOrderAmount) throw refused.belowMinimum(held.terms.minOrderAmount, totalAmount);
}
