/**
 * The shapes the API shows. Stores return these; timestamps are ISO-8601 strings (UTC).
 */
export type DiscountType = "FIXED" | "PERCENT";
export type UserCouponStatus = "AVAILABLE" | "USED" | "EXPIRED";
export type OrderStatus = "PAID" | "CANCELLED";
export type PointHistoryType = "CHARGE" | "USE" | "REFUND";

export interface User {
  id: number;
  name: string;
  balance: number;
}

export interface PointBalance {
  userId: number;
  balance: number;
}

export interface PointHistoryEntry {
  id: number;
  type: PointHistoryType;
  amount: number;
  balanceAfter: number;
  orderId: number | null;
  createdAt: string;
}

export interface Product {
  id: number;
  name: string;
  price: number;
  stock: number;
}

export interface PopularProduct {
  productId: number;
  name: string;
  price: number;
  soldQuantity: number;
}

export interface CouponTerms {
  discountType: DiscountType;
  discountValue: number;
  maxDiscount: number | null;
  minOrderAmount: number;
}

export interface Coupon extends CouponTerms {
  id: number;
  name: string;
  issueStartsAt: string | null;
  issueEndsAt: string | null;
  validDays: number;
  totalQuantity: number;
  issuedQuantity: number;
  remainingQuantity: number;
  createdAt: string;
}

export interface NewCoupon extends CouponTerms {
  name: string;
  issueStartsAt: number | null;
  issueEndsAt: number | null;
  validDays: number;
  totalQuantity: number;
}

export interface ClaimedCoupon {
  id: number;
  userId: number;
  couponId: number;
  status: UserCouponStatus;
  issuedAt: string;
  expiresAt: string;
  usedAt: string | null;
}

export interface UserCouponWithCoupon extends ClaimedCoupon {
  coupon: Coupon;
}

export interface OrderLine {
  productId: number;
  quantity: number;
  unitPrice: number;
}

export interface Order {
  id: number;
  userId: number;
  status: OrderStatus;
  items: OrderLine[];
  totalAmount: number;
  discountAmount: number;
  paidAmount: number;
  userCouponId: number | null;
  createdAt: string;
  cancelledAt: string | null;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export interface PageRequest {
  limit: number;
  /** Id of the last item of the previous page (exclusive). */
  after: number | null;
}
