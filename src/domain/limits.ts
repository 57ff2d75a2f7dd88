/**
 * Explicit caps on every amount. They keep all arithmetic far below 2^53 (JavaScript's exact integers):
 * the largest order is 20 lines × 100 units × 10,000,000 won = 2·10^10.
 */
export const limits = {
  nameLength: 100,
  maxPrice: 10_000_000,
  maxStock: 1_000_000,
  maxCharge: 1_000_000,
  maxBalance: 100_000_000,
  maxFixedDiscount: 10_000_000,
  maxPercentDiscount: 100,
  maxCouponQuantity: 10_000_000,
  maxMinOrderAmount: 1_000_000_000,
  maxValidDays: 365,
  defaultValidDays: 30,
  maxOrderLines: 20,
  maxLineQuantity: 100,
  maxPageSize: 100,
  defaultPageSize: 20,
  maxPopularDays: 30,
  defaultPopularDays: 3,
  maxPopularLimit: 20,
  defaultPopularLimit: 5,
  /** Largest id accepted in a path, query or body: PostgreSQL ids are 32-bit integers. */
  maxId: 2_147_483_647,
  idempotencyKeyMaxLength: 255,
  /** Stored idempotent responses are kept at least this long. */
  idempotencyRetentionMs: 24 * 60 * 60 * 1000,
} as const;

export const DAY_MS = 24 * 60 * 60 * 1000;
