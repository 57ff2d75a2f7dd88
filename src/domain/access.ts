import { notFound, refused } from "./errors.ts";

/**
 * Who is calling. A user acts for themself; an admin provisions users, products and coupons and may
 * act for any user (support work). Nobody else acts for anyone.
 */
export type Principal = { role: "user"; userId: number; subject: string } | { role: "admin"; subject: string };

export function mayActFor(principal: Principal, userId: number): boolean {
  return principal.role === "admin" || principal.userId === userId;
}

export function assertMayActFor(principal: Principal, userId: number): void {
  if (!mayActFor(principal, userId)) {
    throw refused.notYours();
  }
}

export function assertAdmin(principal: Principal): void {
  if (principal.role !== "admin") throw refused.adminOnly();
}

/**
 * An order is seen, and cancelled, by its owner and by admins only. To anyone else it is answered as
 * missing, not as forbidden: order ids are sequential, and "not yours" would tell which ones exist.
 */
export function assertMaySeeOrder(principal: Principal, order: { id: number; userId: number }): void {
  if (!mayActFor(principal, order.userId)) throw notFound.order(order.id);
}
