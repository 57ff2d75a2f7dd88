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
  "SERVICE_UNAVAILABLE",
  "STORAGE_FULL",
  "INTERNAL_ERROR",
] as const;

export type ErrorCode = (typeof errorCodes)[number];

export class DomainError extends Error {
  override readonly name = "DomainError";
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    // An answer to the caller, not a bug: nobody reads where it was thrown, and capturing the stack
    // was 3 % of a claim's CPU in a stampede of 409s (load/PERFORMANCE.md).
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = limit;
    this.code = code;
  }
}

/** "No such row", for each kind of resource. */
export const notFound = {
  user: (id: number) => new DomainError("USER_NOT_FOUND", `User ${id} does not exist.`),
  product: (id: number) => new DomainError("PRODUCT_NOT_FOUND", `Product ${id} does not exist.`),
  coupon: (id: number) => new DomainError("COUPON_NOT_FOUND", `Coupon ${id} does not exist.`),
  order: (id: number) => new DomainError("ORDER_NOT_FOUND", `Order ${id} does not exist.`),
};

/**
 * Every refusal a caller can see, built here only. The stores report "no row" or "no change" and the
 * scripts in writes.ts turn that into one of these, so each backend answers with the same words.
 */
export const refused = {
  alreadyClaimed: () => new DomainError("COUPON_ALREADY_ISSUED", "This user already holds this coupon."),
  soldOut: () => new DomainError("COUPON_SOLD_OUT", "Every coupon of this drop has been claimed."),
  notStarted: () => new DomainError("COUPON_NOT_ACTIVE", "Claiming this coupon has not started yet."),
  ended: () => new DomainError("COUPON_NOT_ACTIVE", "Claiming this coupon has ended."),
  couponNotOwned: () => new DomainError("COUPON_NOT_USABLE", "The coupon does not belong to this user."),
  couponUsed: () => new DomainError("COUPON_NOT_USABLE", "The coupon has already been used."),
  couponExpired: () => new DomainError("COUPON_NOT_USABLE", "The coupon has expired."),
  belowMinimum: (minOrderAmount: number, totalAmount: number) =>
    new DomainError(
      "COUPON_NOT_USABLE",
      `The coupon needs an order of at least ${minOrderAmount} won; this order is ${totalAmount} won.`,
    ),
  insufficientStock: (productId: number, quantity: number) =>
    new DomainError("INSUFFICIENT_STOCK", `Product ${productId} has fewer than ${quantity} in stock.`),
  insufficientPoints: (amount: number) =>
    new DomainError("INSUFFICIENT_POINTS", `The order costs ${amount} points; the balance is lower.`),
  notCancellable: (status: string) =>
    new DomainError("ORDER_NOT_CANCELLABLE", `An order that is ${status} cannot be cancelled.`),
  balanceLimit: (maxBalance: number, credit: "charge" | "refund") =>
    new DomainError(
      "BALANCE_LIMIT_EXCEEDED",
      `A balance may not exceed ${maxBalance} points; this ${credit} would pass it.`,
    ),
  idempotencyKeyReused: () =>
    new DomainError(
      "IDEMPOTENCY_KEY_REUSED",
      "This Idempotency-Key was already used for a different request; use a new key for a new request.",
    ),
  malformedAuthorization: () => new DomainError("UNAUTHENTICATED", "Expected an Authorization: Bearer <token> header."),
  tokenRequired: () => new DomainError("UNAUTHENTICATED", "This route needs a bearer token."),
  /** A token that is not valid, with the reason (see auth/tokens.ts). */
  invalidToken: (reason: string) => new DomainError("UNAUTHENTICATED", reason),
  notYours: () => new DomainError("FORBIDDEN", "This resource belongs to another user."),
  adminOnly: () => new DomainError("FORBIDDEN", "Only an admin may do this."),
};

/**
 * Faults of a dependency, not of the request: the database, its lock, its disk or Redis is down, busy
 * or full. Each is answered fast with a retry hint, logged at warn (not as a bug), and stops once the
 * dependency is back; the stores translate their driver's errors into these.
 */
export class Unavailable extends DomainError {
  constructor(
    code: "SERVICE_UNAVAILABLE" | "STORAGE_FULL",
    message: string,
    /** Seconds a client should wait before trying again (the Retry-After header). */
    readonly retryAfterSeconds: number,
    options?: { cause?: unknown },
  ) {
    super(code, message);
    if (options?.cause !== undefined) this.cause = options.cause;
  }
}

export const unavailable = {
  /** A dependency (named for the operator: "PostgreSQL", "Redis", "the SQLite write lock") is down or busy. */
  dependency: (name: string, cause?: unknown) =>
    new Unavailable("SERVICE_UNAVAILABLE", `${name} is unavailable right now; try again shortly.`, 1, { cause }),
  /** The database's disk is full: reads still work, writes resume once space is freed. */
  storageFull: (cause?: unknown) =>
    new Unavailable(
      "STORAGE_FULL",
      "The database's disk is full; nothing was written. Reads still work; try the write again later.",
      5,
      { cause },
    ),
};
