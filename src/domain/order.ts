import { discountFor } from "./coupon.ts";
import { refused } from "./errors.ts";
import type { CouponTerms, Order, OrderLine, OrderStatus } from "./model.ts";
import { isoOf, isoOrNull } from "./time.ts";

export interface RequestedLine {
  productId: number;
  quantity: number;
}

/**
 * Lines in ascending product id: every backend touches product rows in this order, so two orders
 * for overlapping products can never lock each other (no deadlocks on PostgreSQL).
 */
export function linesInLockOrder<T extends RequestedLine>(lines: readonly T[]): T[] {
  return [...lines].sort((a, b) => a.productId - b.productId);
}

export interface OrderAmounts {
  totalAmount: number;
  discountAmount: number;
  paidAmount: number;
}

/** Prices come from the database (`unitPrice`), never from the request. */
export function orderTotal(lines: readonly { quantity: number; unitPrice: number }[]): number {
  let total = 0;
  for (const line of lines) total += line.quantity * line.unitPrice;
  return total;
}

/** What the buyer pays in points once the coupon (if any) is applied. */
export function settle(totalAmount: number, coupon: CouponTerms | null): OrderAmounts {
  const discountAmount = coupon === null ? 0 : discountFor(coupon, totalAmount);
  return { totalAmount, discountAmount, paidAmount: totalAmount - discountAmount };
}

/** Only a PAID order can be cancelled; cancelling is the exact inverse of placing it. */
export function assertCancellable(status: OrderStatus): void {
  if (status !== "PAID") throw refused.notCancellable(status);
}

/** An order as stored (timestamps in epoch milliseconds), without its lines. */
export interface OrderRecord {
  id: number;
  userId: number;
  status: OrderStatus;
  totalAmount: number;
  discountAmount: number;
  paidAmount: number;
  userCouponId: number | null;
  createdAt: number;
  cancelledAt: number | null;
}

/** The order as the API shows it. */
export function orderOf(record: OrderRecord, items: OrderLine[]): Order {
  return {
    id: record.id,
    userId: record.userId,
    status: record.status,
    items,
    totalAmount: record.totalAmount,
    discountAmount: record.discountAmount,
    paidAmount: record.paidAmount,
    userCouponId: record.userCouponId,
    createdAt: isoOf(record.createdAt),
    cancelledAt: isoOrNull(record.cancelledAt),
  };
}
