import { refused } from "./errors.ts";

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
