/**
 * The write scripts against a scripted storage: which moves each write asks for, in which order,
 * and which refusal each "no row" / "no change" answer becomes. Both stores run these scripts, so
 * this order is the order of checks on every backend.
 */
import { describe, expect, test } from "bun:test";
import type { CouponDefinition } from "../../src/domain/coupon.ts";
import { DomainError, type ErrorCode } from "../../src/domain/errors.ts";
import { type ClaimEvents, claimedData, envelopeJson, type NewEvent } from "../../src/domain/events.ts";
import { limits } from "../../src/domain/limits.ts";
import { advance, runAsync, runSync } from "../../src/domain/script.ts";
import {
  cancelOrder,
  chargePoints,
  claimCoupon,
  type IdempotentRequest,
  type OrderCommit,
  placeOrder,
  type WriteStorage,
} from "../../src/domain/writes.ts";

const NOW = Date.parse("2026-11-25T12:00:00Z");
const DAY = 24 * 60 * 60 * 1000;

const DROP: CouponDefinition = {
  id: 9,
  name: "drop",
  discountType: "FIXED",
  discountValue: 500,
  maxDiscount: null,
  minOrderAmount: 0,
  issueStartsAt: null,
  issueEndsAt: null,
  validDays: 30,
  totalQuantity: 100,
  createdAt: NOW - DAY,
};

/** A storage whose every answer is the happy one unless overridden; it records each move asked. */
function storage(overrides: Partial<WriteStorage> = {}) {
  const asked: string[] = [];
  const happy: WriteStorage = {
    userExists: () => true,
    insertHistory: () => {},
    storedRequest: () => null,
    storeResponse: () => {},
    findCoupon: () => DROP,
    knownRefusal: () => null,
    takeCoupon: () => 7,
    pricesOf: (ids) => ids.map(() => 1000),
    heldCoupon: () => ({
      ownerId: 1,
      status: "AVAILABLE",
      expiresAt: NOW + DAY,
      terms: { discountType: "FIXED", discountValue: 500, maxDiscount: null, minOrderAmount: 0 },
    }),
    newOrderId: () => 42,
    commitOrder: () => null,
    findOrder: () => ({
      id: 42,
      userId: 1,
      status: "PAID",
      totalAmount: 2000,
      discountAmount: 500,
      paidAmount: 1500,
      userCouponId: 7,
      createdAt: NOW,
      cancelledAt: null,
    }),
    markCancelled: () => true,
    orderLines: () => [{ productId: 3, quantity: 2, unitPrice: 1000 }],
    returnStock: () => {},
    releaseCoupon: () => {},
    creditWithinLimit: () => 5000,
    recordEvent: () => {},
  };
  const recorded = Object.fromEntries(
    Object.entries({ ...happy, ...overrides }).map(([op, answer]) => [
      op,
      (...args: unknown[]) => {
        asked.push(op);
        return (answer as (...a: unknown[]) => unknown)(...args);
      },
    ]),
  ) as unknown as WriteStorage;
  return { storage: recorded, asked };
}

function refusal(run: () => unknown): { code: ErrorCode; message: string } {
  try {
    run();
  } catch (error) {
    if (error instanceof DomainError) return { code: error.code, message: error.message };
    throw error;
  }
  throw new Error("expected a refusal");
}

const claim = { userId: 1, couponId: 9, now: NOW };
const order = { userId: 1, items: [{ productId: 3, quantity: 2 }], userCouponId: 7, now: NOW, idempotency: null };
const key: IdempotentRequest = { key: "k1", fingerprint: "f1", statusCode: 201 };

describe("claimCoupon", () => {
  test("asks coupon → user → known refusal → take, and returns the claimed coupon", () => {
    const { storage: s, asked } = storage();
    expect(runSync(claimCoupon(claim, false), s)).toEqual({
      id: 7,
      userId: 1,
      couponId: 9,
      status: "AVAILABLE",
      issuedAt: new Date(NOW).toISOString(),
      expiresAt: new Date(NOW + 30 * DAY).toISOString(),
      usedAt: null,
    });
    expect(asked).toEqual(["findCoupon", "userExists", "knownRefusal", "takeCoupon"]);
  });

  test.each([
    [
      "a missing coupon (even for a missing user)",
      { findCoupon: () => null, userExists: () => false },
      "COUPON_NOT_FOUND",
      1,
    ],
    ["a missing user", { userExists: () => false }, "USER_NOT_FOUND", 2],
    ["before the window", { findCoupon: () => ({ ...DROP, issueStartsAt: NOW + 1 }) }, "COUPON_NOT_ACTIVE", 2],
    ["at the window's end (exclusive)", { findCoupon: () => ({ ...DROP, issueEndsAt: NOW }) }, "COUPON_NOT_ACTIVE", 2],
    ["a holder known early", { knownRefusal: () => "ALREADY_CLAIMED" }, "COUPON_ALREADY_ISSUED", 3],
    ["sold out known early", { knownRefusal: () => "SOLD_OUT" }, "COUPON_SOLD_OUT", 3],
    ["a holder, found by the guard", { takeCoupon: () => "ALREADY_CLAIMED" }, "COUPON_ALREADY_ISSUED", 4],
    ["none left, found by the guard", { takeCoupon: () => "SOLD_OUT" }, "COUPON_SOLD_OUT", 4],
  ] as [string, Partial<WriteStorage>, ErrorCode, number][])(
    "%s is refused, and nothing after that check is asked",
    (_, overrides, code, movesAsked) => {
      const { storage: s, asked } = storage(overrides);
      expect(refusal(() => runSync(claimCoupon(claim, false), s)).code).toBe(code);
      expect(asked.length).toBe(movesAsked);
    },
  );
});

/** A commitOrder that commits and keeps what it was given. */
function recordInto(commits: OrderCommit[]) {
  return (commit: OrderCommit) => {
    commits.push(commit);
    return null;
  };
}

describe("placeOrder", () => {
  test("asks in the documented order and commits last, with the order's response", () => {
    const commits: OrderCommit[] = [];
    const { storage: s, asked } = storage({ commitOrder: recordInto(commits) });
    const placed = runSync(placeOrder({ ...order, idempotency: key }, false), s);
    expect(placed).toMatchObject({
      replayed: false,
      value: { id: 42, totalAmount: 2000, discountAmount: 500, paidAmount: 1500 },
    });
    expect(asked).toEqual(["userExists", "storedRequest", "pricesOf", "heldCoupon", "newOrderId", "commitOrder"]);
    expect(commits).toEqual([
      {
        order: {
          id: 42,
          userId: 1,
          status: "PAID",
          totalAmount: 2000,
          discountAmount: 500,
          paidAmount: 1500,
          userCouponId: 7,
          createdAt: NOW,
          cancelledAt: null,
        },
        lines: [{ productId: 3, quantity: 2, unitPrice: 1000 }],
        response: { request: key, body: JSON.stringify(placed.replayed ? null : placed.value) },
        event: null,
      },
    ]);
  });

  test("the user is checked before the Idempotency-Key is looked up", () => {
    const { storage: s, asked } = storage({ userExists: () => false });
    expect(refusal(() => runSync(placeOrder({ ...order, idempotency: key }, false), s)).code).toBe("USER_NOT_FOUND");
    expect(asked).toEqual(["userExists"]);
  });

  test("a stored request is replayed as stored, or refused when the body differs", () => {
    const stored = { fingerprint: "f1", statusCode: 201, responseBody: '{"id":1}' };
    const { storage: s, asked } = storage({ storedRequest: () => stored });
    expect(runSync(placeOrder({ ...order, idempotency: key }, false), s)).toEqual({
      replayed: true,
      statusCode: 201,
      body: '{"id":1}',
    });
    expect(asked).toEqual(["userExists", "storedRequest"]);
    const other = storage({ storedRequest: () => ({ ...stored, fingerprint: "f2" }) });
    expect(refusal(() => runSync(placeOrder({ ...order, idempotency: key }, false), other.storage)).code).toBe(
      "IDEMPOTENCY_KEY_REUSED",
    );
  });

  test("a key taken meanwhile by the same request replays it; by another request, refuses the reuse", () => {
    const stored = { fingerprint: "f1", statusCode: 201, responseBody: '{"id":1}' };
    let reads = 0;
    const { storage: s, asked } = storage({
      storedRequest: () => (reads++ === 0 ? null : stored),
      commitOrder: () => ({ guard: "KEY_TAKEN" }),
    });
    expect(runSync(placeOrder({ ...order, idempotency: key }, false), s)).toEqual({
      replayed: true,
      statusCode: 201,
      body: '{"id":1}',
    });
    expect(asked.slice(-2)).toEqual(["commitOrder", "storedRequest"]);
    let otherReads = 0;
    const other = storage({
      storedRequest: () => (otherReads++ === 0 ? null : { ...stored, fingerprint: "f2" }),
      commitOrder: () => ({ guard: "KEY_TAKEN" }),
    });
    expect(refusal(() => runSync(placeOrder({ ...order, idempotency: key }, false), other.storage)).code).toBe(
      "IDEMPOTENCY_KEY_REUSED",
    );
  });

  test("lines are priced and committed in ascending product id; the first missing one is named", () => {
    const lines = [
      { productId: 8, quantity: 1 },
      { productId: 2, quantity: 5 },
      { productId: 5, quantity: 1 },
    ];
    const priced: number[][] = [];
    const { storage: s } = storage({
      pricesOf: (ids) => {
        priced.push(ids);
        return ids.map((id) => (id === 2 ? null : 1000));
      },
    });
    expect(refusal(() => runSync(placeOrder({ ...order, items: lines, userCouponId: null }, false), s))).toEqual({
      code: "PRODUCT_NOT_FOUND",
      message: "Product 2 does not exist.",
    });
    expect(priced).toEqual([[2, 5, 8]]);

    const committed: number[][] = [];
    const { storage: ok } = storage({
      commitOrder: (commit) => {
        committed.push(commit.lines.map((line) => line.productId));
        return null;
      },
    });
    runSync(placeOrder({ ...order, items: lines, userCouponId: null }, false), ok);
    expect(committed).toEqual([[2, 5, 8]]);
  });

  test.each([
    [
      "another user's coupon",
      { heldCoupon: () => null },
      "COUPON_NOT_USABLE",
      "The coupon does not belong to this user.",
    ],
    [
      "a line short of stock",
      { commitOrder: () => ({ guard: "STOCK", productId: 3, quantity: 2 }) },
      "INSUFFICIENT_STOCK",
      "Product 3 has fewer than 2 in stock.",
    ],
    [
      "a coupon used meanwhile",
      { commitOrder: () => ({ guard: "COUPON" }) },
      "COUPON_NOT_USABLE",
      "The coupon has already been used.",
    ],
    [
      "a balance that does not cover it",
      { commitOrder: () => ({ guard: "POINTS" }) },
      "INSUFFICIENT_POINTS",
      "The order costs 1500 points; the balance is lower.",
    ],
  ] as [string, Partial<WriteStorage>, ErrorCode, string][])("%s is refused", (_, overrides, code, message) => {
    expect(refusal(() => runSync(placeOrder(order, false), storage(overrides).storage))).toEqual({ code, message });
  });

  test("an order paid entirely by its coupon commits nothing to pay", () => {
    const commits: OrderCommit[] = [];
    const { storage: s } = storage({
      pricesOf: (ids) => ids.map(() => 100),
      commitOrder: recordInto(commits),
    });
    expect(runSync(placeOrder(order, false), s)).toMatchObject({
      value: { totalAmount: 200, discountAmount: 200, paidAmount: 0 },
    });
    expect(commits[0]?.order.paidAmount).toBe(0);
    expect(commits[0]?.response).toBeNull();
  });
});

describe("cancelOrder", () => {
  test("order → PAID → marked → stock, coupon and points back", () => {
    const { storage: s, asked } = storage();
    expect(runSync(cancelOrder({ orderId: 42, now: NOW + 1 }, false), s)).toMatchObject({
      status: "CANCELLED",
      cancelledAt: new Date(NOW + 1).toISOString(),
      items: [{ productId: 3, quantity: 2, unitPrice: 1000 }],
    });
    expect(asked).toEqual([
      "findOrder",
      "markCancelled",
      "orderLines",
      "returnStock",
      "releaseCoupon",
      "creditWithinLimit",
      "insertHistory",
    ]);
  });

  test("the refund is a credit within the balance cap, like a charge", () => {
    let credit: unknown[] = [];
    const { storage: s } = storage({
      creditWithinLimit: (...args) => {
        credit = args;
        return 1600;
      },
    });
    runSync(cancelOrder({ orderId: 42, now: NOW }, false), s);
    expect(credit).toEqual([1, 1500, limits.maxBalance]);
  });

  test.each([
    ["a missing order", { findOrder: () => null }, "ORDER_NOT_FOUND"],
    ["a cancelled order", { markCancelled: () => false }, "ORDER_NOT_CANCELLABLE"],
    ["a refund past the balance cap", { creditWithinLimit: () => null }, "BALANCE_LIMIT_EXCEEDED"],
  ] as [string, Partial<WriteStorage>, ErrorCode][])("%s is refused", (_, overrides, code) => {
    expect(refusal(() => runSync(cancelOrder({ orderId: 42, now: NOW }, false), storage(overrides).storage)).code).toBe(
      code,
    );
  });
});

describe("chargePoints", () => {
  test("user → Idempotency-Key → credit within the cap → history → stored response", () => {
    let cap = 0;
    const { storage: s, asked } = storage({
      creditWithinLimit: (_user, _amount, maxBalance) => {
        cap = maxBalance;
        return 5000;
      },
    });
    expect(runSync(chargePoints({ userId: 1, amount: 10, now: NOW, idempotency: key }, false), s)).toEqual({
      replayed: false,
      value: { userId: 1, balance: 5000 },
    });
    expect(cap).toBe(limits.maxBalance);
    expect(asked).toEqual(["userExists", "storedRequest", "creditWithinLimit", "insertHistory", "storeResponse"]);
  });

  test("a charge past the cap is refused", () => {
    const { storage: s } = storage({ creditWithinLimit: () => null });
    expect(
      refusal(() => runSync(chargePoints({ userId: 1, amount: 10, now: NOW, idempotency: null }, false), s)).code,
    ).toBe("BALANCE_LIMIT_EXCEEDED");
  });
});

describe("running a script asynchronously", () => {
  const async = (s: WriteStorage) =>
    Object.fromEntries(
      Object.entries(s).map(([op, f]) => [op, async (...a: unknown[]) => (f as (...x: unknown[]) => unknown)(...a)]),
    );

  test("runAsync gives the same answer as runSync", async () => {
    const { storage: s, asked } = storage();
    expect(await runAsync(placeOrder(order, false), async(s) as never)).toEqual(
      runSync(placeOrder(order, false), storage().storage),
    );
    expect(asked.length).toBe(5);
  });

  test("advance answers the moves it can and stops at the first one it cannot", async () => {
    const script = claimCoupon(claim, false);
    const early = {
      findCoupon: async () => DROP,
      userExists: async () => true,
    };
    const next = await advance(script, script.next(), early);
    expect(next.done).toBe(false);
    expect(next.done === false && next.value.op).toBe("knownRefusal");
    const { storage: s, asked } = storage();
    expect(await runAsync(script, async(s) as never, next)).toMatchObject({ id: 7 });
    expect(asked).toEqual(["knownRefusal", "takeCoupon"]);
  });
});

describe("events: each write decides its own, recorded with its effect", () => {
  test("a claim hands coupon.claimed (all but the id) and coupon.sold_out to the take, and records nothing else", () => {
    let given: ClaimEvents | null = null;
    const { storage: s, asked } = storage({
      takeCoupon: (_holding, events) => {
        given = events;
        return 7;
      },
    });
    const claimed = runSync(claimCoupon(claim, true), s);
    expect(asked).toEqual(["findCoupon", "userExists", "knownRefusal", "takeCoupon"]);
    const events = given as unknown as ClaimEvents;
    expect(events.occurredAt).toBe(NOW);
    // The store puts the id in front: the event's data is the claim's answer, byte for byte.
    expect(claimedData(7, events.claimedAfterId)).toBe(JSON.stringify(claimed));
    expect(JSON.parse(events.soldOutData())).toEqual({
      id: 9,
      name: "drop",
      discountType: "FIXED",
      discountValue: 500,
      maxDiscount: null,
      minOrderAmount: 0,
      issueStartsAt: null,
      issueEndsAt: null,
      validDays: 30,
      totalQuantity: 100,
      issuedQuantity: 100,
      remainingQuantity: 0,
      createdAt: new Date(NOW - DAY).toISOString(),
    });
  });

  test("without recordEvents a claim asks the take for none", () => {
    let given: unknown = "unset";
    const { storage: s } = storage({
      takeCoupon: (_holding, events) => {
        given = events;
        return 7;
      },
    });
    runSync(claimCoupon(claim, false), s);
    expect(given).toBeNull();
  });

  test("an order commits order.paid with it: the order's answer, the same text as its stored response", () => {
    const commits: OrderCommit[] = [];
    const { storage: s } = storage({ commitOrder: recordInto(commits) });
    const placed = runSync(placeOrder({ ...order, idempotency: key }, true), s);
    const body = JSON.stringify(placed.replayed ? null : placed.value);
    expect(commits[0]?.event).toEqual({ type: "order.paid", occurredAt: NOW, data: body });
    expect(commits[0]?.response?.body).toBe(body);
  });

  test("a cancel records order.cancelled last, with the cancelled order", () => {
    const recorded: NewEvent[] = [];
    const { storage: s, asked } = storage({ recordEvent: (event) => void recorded.push(event) });
    const cancelled = runSync(cancelOrder({ orderId: 42, now: NOW + 1 }, true), s);
    expect(asked.at(-1)).toBe("recordEvent");
    expect(recorded).toEqual([{ type: "order.cancelled", occurredAt: NOW + 1, data: JSON.stringify(cancelled) }]);
  });

  test("a charge records points.charged with the new balance, before its stored response", () => {
    const recorded: NewEvent[] = [];
    const { storage: s, asked } = storage({ recordEvent: (event) => void recorded.push(event) });
    runSync(chargePoints({ userId: 1, amount: 10, now: NOW, idempotency: key }, true), s);
    expect(asked.slice(-2)).toEqual(["recordEvent", "storeResponse"]);
    expect(recorded).toEqual([{ type: "points.charged", occurredAt: NOW, data: '{"userId":1,"balance":5000}' }]);
  });

  test.each([
    [
      "a cancel refused at the balance cap",
      () => cancelOrder({ orderId: 42, now: NOW }, true),
      { creditWithinLimit: () => null },
    ],
    [
      "a charge refused at the cap",
      () => chargePoints({ userId: 1, amount: 10, now: NOW, idempotency: null }, true),
      { creditWithinLimit: () => null },
    ],
    [
      "a replayed charge",
      () => chargePoints({ userId: 1, amount: 10, now: NOW, idempotency: key }, true),
      { storedRequest: () => ({ fingerprint: "f1", statusCode: 200, responseBody: "{}" }) },
    ],
  ] as [string, () => Generator<unknown, unknown, unknown>, Partial<WriteStorage>][])(
    "%s records no event",
    (_, script, overrides) => {
      const { storage: s, asked } = storage(overrides);
      try {
        runSync(script() as never, s);
      } catch (error) {
        if (!(error instanceof DomainError)) throw error;
      }
      expect(asked).not.toContain("recordEvent");
    },
  );

  test("the envelope splices the stored data in as it is", () => {
    expect(envelopeJson({ id: 12, type: "points.charged", occurredAt: NOW, data: '{"userId":1,"balance":5}' })).toBe(
      `{"id":12,"type":"points.charged","occurredAt":"2026-11-25T12:00:00.000Z","data":{"userId":1,"balance":5}}`,
    );
  });
});
