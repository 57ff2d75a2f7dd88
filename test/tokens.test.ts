import { describe, expect, test } from "bun:test";
import { signToken, TokenVerifier } from "../src/auth/tokens.ts";
import { DomainError } from "../src/domain/errors.ts";

const secret = new TextEncoder().encode("k".repeat(32));

async function failure(run: () => Promise<unknown>): Promise<string> {
  try {
    await run();
    return "accepted";
  } catch (error) {
    return error instanceof DomainError ? `${error.code}: ${error.message}` : String(error);
  }
}

describe("TokenVerifier", () => {
  test("reads the principal of user and admin tokens", async () => {
    const verifier = new TokenVerifier(secret);
    expect(await verifier.verify(await signToken(secret, { sub: "42", role: "user" }, 60))).toEqual({
      role: "user",
      userId: 42,
      subject: "42",
    });
    expect(await verifier.verify(await signToken(secret, { sub: "ops@shop", role: "admin" }, 60))).toEqual({
      role: "admin",
      subject: "ops@shop",
    });
  });

  test("a cached token still expires at its exp", async () => {
    let now = Date.now();
    const verifier = new TokenVerifier(secret, 10, () => now);
    const token = await signToken(secret, { sub: "7", role: "user" }, 60);
    expect((await verifier.verify(token)).subject).toBe("7");
    now += 59_000;
    expect((await verifier.verify(token)).subject).toBe("7");
    now += 2000;
    expect(await failure(() => verifier.verify(token))).toBe("UNAUTHENTICATED: The token has expired.");
    // Not cached any more, and jose agrees.
    expect(await failure(() => verifier.verify(token))).toBe("UNAUTHENTICATED: The token has expired.");
  });

  test("the cache stays bounded and evicted tokens verify again", async () => {
    const verifier = new TokenVerifier(secret, 10);
    const tokens = await Promise.all(
      Array.from({ length: 25 }, (_, i) => signToken(secret, { sub: String(i + 1), role: "user" }, 60)),
    );
    for (const token of tokens) await verifier.verify(token);
    expect((verifier as unknown as { verified: Map<string, unknown> }).verified.size).toBeLessThanOrEqual(10);
    expect((await verifier.verify(tokens[0] as string)).subject).toBe("1");
  });

  test("a forged token is never served from the cache", async () => {
    const verifier = new TokenVerifier(secret);
    const token = await signToken(secret, { sub: "7", role: "user" }, 60);
    await verifier.verify(token);
    const forged = `${token.slice(0, -2)}${token.endsWith("AA") ? "BB" : "AA"}`;
    expect(await failure(() => verifier.verify(forged))).toStartWith("UNAUTHENTICATED");
  });
});
