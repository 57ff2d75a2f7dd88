/**
 * Every failure a caller can see has a stable code. The HTTP layer maps codes to statuses; the domain
 * and the stores only ever throw `DomainError`s, so a new backend cannot invent a new failure shape.
 */
export const errorCodes = [
  "VALIDATION_FAILED",
  "PAYLOAD_TOO_LARGE",
  "UNSUPPORTED_MEDIA_TYPE",
  "UNAUTHENTICATED",
  "FORBIDDEN",
  "RATE_LIMITED",
  "NOT_FOUND",
  "USER_NOT_FOUND",
  "PRODUCT_NOT_FOUND",
  "COUPON_NOT_FOUND",
  "ORDER_NOT_FOUND",
  "COUPON_ALREADY_ISSUED",
  "COUPON_SOLD_OUT",
  "COUPON_NOT_ACTIVE",
  "INSUFFICIENT_STOCK",
  "INSUFFICIENT_POINTS",
  "COUPON_NOT_USABLE",
  "ORDER_NOT_CANCELLABLE",
  "BALANCE_LIMIT_EXCEEDED",
  "IDEMPOTENCY_KEY_REUSED",
  "INTERNAL_ERROR",
] as const;

export type ErrorCode = (typeof errorCodes)[number];

export class DomainError extends Error {
  override readonly name = "DomainError";
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export const notFound = {
  user: (id: number) => new DomainError("USER_NOT_FOUND", `User ${id} does not exist.`),
  product: (id: number) => new DomainError("PRODUCT_NOT_FOUND", `Product ${id} does not exist.`),
  coupon: (id: number) => new DomainError("COUPON_NOT_FOUND", `Coupon ${id} does not exist.`),
  order: (id: number) => new DomainError("ORDER_NOT_FOUND", `Order ${id} does not exist.`),
};
