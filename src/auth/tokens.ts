import { errors as joseErrors, jwtVerify, SignJWT } from "jose";
import type { Principal } from "../domain/access.ts";
import { refused } from "../domain/errors.ts";

/**
 * Bearer tokens: JWTs signed with HS256 (the only algorithm accepted) carrying `sub`, `role` and a
 * required `exp`. A user's `sub` is their user id as a decimal string (RFC 7519 makes `sub` a string).
 */
export const MIN_SECRET_BYTES = 32;

export interface TokenClaims {
  sub: string;
  role: "user" | "admin";
}

export async function signToken(secret: Uint8Array, claims: TokenClaims, ttlSeconds: number): Promise<string> {
  return new SignJWT({ role: claims.role })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(claims.sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
    .sign(secret);
}

const userSubject = /^[1-9][0-9]{0,15}$/;

function principalOf(payload: Record<string, unknown>): Principal {
  const { sub, role } = payload;
  if (typeof sub !== "string" || sub.length === 0 || sub.length > 255) {
    throw refused.invalidToken("The token's sub claim must be a non-empty string.");
  }
  if (role === "admin") return { role: "admin", subject: sub };
  if (role === "user") {
    if (!userSubject.test(sub))
      throw refused.invalidToken("A user token's sub must be the user id as a decimal string.");
    return { role: "user", userId: Number(sub), subject: sub };
  }
  throw refused.invalidToken('The token\'s role claim must be "user" or "admin".');
}

/**
 * Verifies tokens with jose, and remembers tokens it has verified until they expire.
 *
 * Why a cache: WebCrypto HMAC costs about 40 µs a call on Bun, more than a whole coupon claim, and a
 * client sends the same token with every request. The cache key is the entire token, signature
 * included, so a hit means these exact bytes were verified with this secret before; `exp` is still
 * checked on every hit. Bounded: when full, the oldest entries are dropped.
 */
export class TokenVerifier {
  private readonly verified = new Map<string, { principal: Principal; expMs: number }>();

  constructor(
    private readonly secret: Uint8Array,
    private readonly maxCached = 50_000,
    private readonly nowMs: () => number = Date.now,
  ) {}

  /**
   * The principal of a token verified before and not yet expired, without a promise: the hot path of
   * every authenticated request. Undefined when the token must go through `verify`.
   */
  cached(token: string): Principal | undefined {
    const hit = this.verified.get(token);
    if (hit === undefined) return undefined;
    if (hit.expMs > this.nowMs()) return hit.principal;
    this.verified.delete(token);
    return undefined;
  }

  async verify(token: string): Promise<Principal> {
    const hit = this.cached(token);
    if (hit !== undefined) return hit;
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, this.secret, {
        algorithms: ["HS256"],
        requiredClaims: ["exp", "sub", "role"],
        currentDate: new Date(this.nowMs()),
      }));
    } catch (error) {
      throw refused.invalidToken(describe(error));
    }
    const principal = principalOf(payload);
    if (this.verified.size >= this.maxCached) {
      // Maps iterate in insertion order: drop the oldest tenth.
      let drop = Math.ceil(this.maxCached / 10);
      for (const key of this.verified.keys()) {
        if (drop-- <= 0) break;
        this.verified.delete(key);
      }
    }
    this.verified.set(token, { principal, expMs: (payload.exp as number) * 1000 });
    return principal;
  }
}

function describe(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return "The token has expired.";
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    if (error.claim === "nbf") return "The token is not valid yet.";
    if (error.claim === "iat") return "The token was issued in the future.";
    return `The token's ${error.claim} claim is missing or invalid.`;
  }
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return "Only HS256 tokens are accepted.";
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return "The token's signature is not valid.";
  return "The token is malformed.";
}
