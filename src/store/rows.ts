/**
 * Rows to the shapes the API shows, shared by both adapters: their tables have the same columns,
 * whatever the SQL dialect (timestamps are epoch milliseconds in both).
 */
import type { CouponDefinition, HeldCoupon } from "../domain/coupon.ts";
import { couponOf, userCouponStatus } from "../domain/coupon.ts";
import type {
  ClaimedCoupon,
  Coupon,
  PointHistoryEntry,
  PointHistoryType,
  UserCouponStatus,
  UserCouponWithCoupon,
} from "../domain/model.ts";
import { isoOf, isoOrNull } from "../domain/time.ts";

export interface CouponRow extends CouponDefinition {
  issuedQuantity: number;
}

export interface UserCouponRow {
  id: number;
  userId: number;
  couponId: number;
  status: "AVAILABLE" | "USED";
  issuedAt: number;
  expiresAt: number;
  usedAt: number | null;
}

export function toCoupon(row: CouponRow): Coupon {
  return couponOf(row, row.issuedQuantity);
}

export function toClaimedCoupon(row: UserCouponRow, now: number): ClaimedCoupon {
  return {
    id: row.id,
    userId: row.userId,
    couponId: row.couponId,
    status: userCouponStatus(row.status, row.expiresAt, now),
    issuedAt: isoOf(row.issuedAt),
    expiresAt: isoOf(row.expiresAt),
    usedAt: isoOrNull(row.usedAt),
  };
}

/** A user's coupons with their drops, oldest first, keeping those of the asked status (null: all). */
export function toUserCoupons(
  rows: { held: UserCouponRow; coupon: CouponRow }[],
  status: UserCouponStatus | null,
  now: number,
): UserCouponWithCoupon[] {
  const items: UserCouponWithCoupon[] = [];
  for (const row of rows) {
    const claimed = toClaimedCoupon(row.held, now);
    if (status === null || claimed.status === status) items.push({ ...claimed, coupon: toCoupon(row.coupon) });
  }
  return items;
}

export interface HistoryRow {
  id: number;
  type: PointHistoryType;
  amount: number;
  balanceAfter: number;
  orderId: number | null;
  createdAt: number;
}

export function toHistoryEntry(row: HistoryRow): PointHistoryEntry {
  return {
    id: row.id,
    type: row.type,
    amount: row.amount,
    balanceAfter: row.balanceAfter,
    orderId: row.orderId,
    createdAt: isoOf(row.createdAt),
  };
}

export function toHeldCoupon(row: { held: UserCouponRow; coupon: CouponRow }): HeldCoupon {
  return {
    ownerId: row.held.userId,
    status: row.held.status,
    expiresAt: row.held.expiresAt,
    terms: {
      discountType: row.coupon.discountType,
      discountValue: row.coupon.discountValue,
      maxDiscount: row.coupon.maxDiscount,
      minOrderAmount: row.coupon.minOrderAmount,
    },
  };
}

/** A row the statement just wrote or the schema guarantees (e.g. `INSERT … RETURNING`): absent is a bug. */
export function must<T>(row: T | undefined | null, what: string): T {
  if (row === undefined || row === null) throw new Error(`expected ${what}, got no row`);
  return row;
}
