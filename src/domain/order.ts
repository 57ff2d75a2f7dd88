import { discountFor } from "./coupon.ts";
import { DomainError } from "./errors.ts";
import type { CouponTerms, OrderStatus } from "./model.ts";

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
  if (status !== "PAID") {
    throw new DomainError("ORDER_NOT_CANCELLABLE", `An order that is ${status} cannot be cancelled.`);
  }
}
