/**
 * Parity: one scripted sequence of edge cases runs over HTTP on SQLite and on every PostgreSQL coupon
 * strategy, and every step must be answered alike: status, `code`, body (messages included) and the
 * Idempotent-Replayed header. Each backend's transcript is compared with SQLite's, step by step.
 */
import { describe, expect, test } from "bun:test";
import { DAY_MS } from "../src/domain/limits.ts";
import type { Reply } from "./support/api.ts";
import { type Backend, backends, startServer, type TestServer, testClock } from "./support/server.ts";

/** Every backend runs at the same fixed instant, so timestamps in bodies match. */
const FIXED_MS = Date.UTC(2030, 0, 15, 12, 0, 0);
const HOUR_MS = 3_600_000;
const MISSING = 999_999;

interface Answer {
  status: number;
  replayed: string | null;
  body: unknown;
}

interface Step {
  name: string;
  /** What the script means the step to get on SQLite: "201", or "409 COUPON_SOLD_OUT". */
  intended: string;
  answer: Answer;
}

const kindOfKey = (key: string) => (key.endsWith("Id") ? key.slice(0, -2) : undefined);

/** What an object in a body is, told by its fields: the kind its `id` belongs to. */
function kindOfObject(value: Record<string, unknown>): string | undefined {
  if ("balanceAfter" in value) return "history";
  if ("totalAmount" in value) return "order";
  if ("discountType" in value) return "coupon";
  if ("expiresAt" in value) return "userCoupon";
  if ("price" in value && "stock" in value) return "product";
  if ("balance" in value && "name" in value) return "user";
  return undefined;
}

/**
 * Ids are compared symbolically: each distinct id value of a kind (user, product, coupon, userCoupon,
 * order, history) becomes `<kind>#<n>`, n the order in which this backend's transcript first showed
 * it. Dropping ids would hide a wrong reference; comparing them raw would fail on a legitimate
 * difference: PostgreSQL sequences are not transactional, so a rolled-back insert or an
 * `INSERT … ON CONFLICT DO NOTHING` that inserted nothing still consumes an id, and the next row's id
 * differs from SQLite's. A page cursor is the id of the page's last item, so it is mapped as one.
 */
class IdSymbols {
  private readonly seen = new Map<string, Map<unknown, string>>();

  symbol(kind: string, value: unknown): string {
    const ofKind = this.seen.get(kind) ?? new Map<unknown, string>();
    this.seen.set(kind, ofKind);
    const symbol = ofKind.get(String(value)) ?? `${kind}#${ofKind.size + 1}`;
    ofKind.set(String(value), symbol);
    return symbol;
  }

  normalise(value: unknown): unknown {
    if (Array.isArray(value)) return value.map((item) => this.normalise(item));
    if (value === null || typeof value !== "object") return value;
    const object = value as Record<string, unknown>;
    const ownKind = kindOfObject(object);
    const itemKind = Array.isArray(object.items) && object.items.length > 0 ? kindOfObject(object.items[0]) : undefined;
    return Object.fromEntries(
      Object.entries(object).map(([key, field]) => {
        if (field === null) return [key, field];
        const kind = key === "id" ? ownKind : key === "nextCursor" ? itemKind : kindOfKey(key);
        return [key, kind === undefined ? this.normalise(field) : this.symbol(kind, field)];
      }),
    );
  }
}

/** Runs the script against one server and returns its transcript. */
async function transcriptOf(server: TestServer): Promise<Step[]> {
  const steps: Step[] = [];
  const ids = new IdSymbols();
  const api = server.admin;
  const record = async (name: string, intended: string, reply: Reply): Promise<Reply> => {
    steps.push({
      name,
      intended,
      answer: {
        status: reply.status,
        replayed: reply.headers.get("idempotent-replayed"),
        body: ids.normalise(reply.body),
      },
    });
    return reply;
  };
  const get = (name: string, intended: string, path: string) => api.get(path).then((r) => record(name, intended, r));
  const post = (name: string, intended: string, path: string, body?: unknown, headers?: Record<string, string>) =>
    api.post(path, body, headers).then((r) => record(name, intended, r));
  const idOf = (reply: Reply) => reply.body.id as number;
  const key = (value: string) => ({ "idempotency-key": value });
  const order = (userId: number, lines: [number, number][], userCouponId?: number) => ({
    userId,
    items: lines.map(([productId, quantity]) => ({ productId, quantity })),
    ...(userCouponId === undefined ? {} : { userCouponId }),
  });
  const iso = (ms: number) => new Date(ms).toISOString();

  // The cast: three users, two products, five drops.
  const alice = idOf(await post("create alice", "201", "/api/users", { name: "alice" }));
  const bob = idOf(await post("create bob", "201", "/api/users", { name: "bob" }));
  const carol = idOf(await post("create carol", "201", "/api/users", { name: "carol" }));
  await post("charge alice 100,000", "200", `/api/users/${alice}/points/charge`, { amount: 100_000 });
  await post("charge carol 500", "200", `/api/users/${carol}/points/charge`, { amount: 500 });
  const cheap = idOf(
    await post("create cheap product", "201", "/api/products", { name: "cheap", price: 1000, stock: 50 }),
  );
  const scarce = idOf(
    await post("create scarce product", "201", "/api/products", { name: "scarce", price: 5000, stock: 1 }),
  );
  const drop = (name: string, input: Record<string, unknown>) =>
    post(`create drop ${name}`, "201", "/api/coupons", {
      name,
      discountType: "FIXED",
      discountValue: 1000,
      totalQuantity: 10,
      ...input,
    }).then(idOf);
  const fixed = await drop("fixed", { minOrderAmount: 3000 });
  const percent = await drop("percent", { discountType: "PERCENT", discountValue: 15, maxDiscount: 2000 });
  const windowed = await drop("windowed", {
    issueStartsAt: iso(FIXED_MS + HOUR_MS),
    issueEndsAt: iso(FIXED_MS + 2 * HOUR_MS),
  });
  const single = await drop("single", { totalQuantity: 1 });
  const shortLived = await drop("short-lived", { validDays: 1 });

  // Things that do not exist.
  await get("missing user: read", "404 USER_NOT_FOUND", `/api/users/${MISSING}`);
  await get("missing user: balance", "404 USER_NOT_FOUND", `/api/users/${MISSING}/points`);
  await post("missing user: charge", "404 USER_NOT_FOUND", `/api/users/${MISSING}/points/charge`, { amount: 1 });
  await post("missing user: claim", "404 USER_NOT_FOUND", `/api/coupons/${MISSING}`, { couponId: fixed });
  await post("missing user: order", "404 USER_NOT_FOUND", "/api/orders", order(MISSING, [[cheap, 1]]));
  await get("missing user: coupon list", "404 USER_NOT_FOUND", `/api/users/${MISSING}/coupons`);
  await get("missing user: order list", "404 USER_NOT_FOUND", `/api/users/${MISSING}/orders`);
  await get("missing user: point history", "404 USER_NOT_FOUND", `/api/users/${MISSING}/points/history`);
  await get("missing coupon: read", "404 COUPON_NOT_FOUND", `/api/coupons/${MISSING}`);
  await post("missing coupon: claim", "404 COUPON_NOT_FOUND", `/api/coupons/${alice}`, { couponId: MISSING });
  await post("missing user and coupon: claim", "404 COUPON_NOT_FOUND", `/api/coupons/${MISSING}`, {
    couponId: MISSING,
  });
  await get("missing product: read", "404 PRODUCT_NOT_FOUND", `/api/products/${MISSING}`);
  await post("missing product: order", "404 PRODUCT_NOT_FOUND", "/api/orders", order(alice, [[MISSING, 1]]));
  await post(
    "missing product after a real one: order",
    "404 PRODUCT_NOT_FOUND",
    "/api/orders",
    order(alice, [
      [cheap, 1],
      [MISSING, 1],
    ]),
  );
  await get("missing order: read", "404 ORDER_NOT_FOUND", `/api/orders/${MISSING}`);
  await post("missing order: cancel", "404 ORDER_NOT_FOUND", `/api/orders/${MISSING}/cancel`);
  await post("missing user coupon: order", "409 COUPON_NOT_USABLE", "/api/orders", order(alice, [[cheap, 1]], MISSING));

  // The issue window.
  await post("claim before the window", "409 COUPON_NOT_ACTIVE", `/api/coupons/${alice}`, { couponId: windowed });
  server.clock.set(FIXED_MS + 2 * HOUR_MS);
  await post("claim after the window", "409 COUPON_NOT_ACTIVE", `/api/coupons/${alice}`, { couponId: windowed });
  server.clock.set(FIXED_MS + HOUR_MS);
  await post("claim inside the window", "201", `/api/users/${alice}/coupons`, { couponId: windowed });
  server.clock.set(FIXED_MS);

  // Supply and holders.
  await post("claim the last of a drop", "201", `/api/coupons/${alice}`, { couponId: single });
  await post("claim a sold-out drop", "409 COUPON_SOLD_OUT", `/api/coupons/${bob}`, { couponId: single });
  await post("holder of a sold-out drop claims again", "409 COUPON_ALREADY_ISSUED", `/api/coupons/${alice}`, {
    couponId: single,
  });
  await post(
    "holder of a sold-out drop claims again (other path)",
    "409 COUPON_ALREADY_ISSUED",
    `/api/users/${alice}/coupons`,
    {
      couponId: single,
    },
  );
  const aliceFixed = idOf(await post("alice claims fixed", "201", `/api/coupons/${alice}`, { couponId: fixed }));
  await post("already claimed", "409 COUPON_ALREADY_ISSUED", `/api/coupons/${alice}`, { couponId: fixed });
  const bobPercent = idOf(await post("bob claims percent", "201", `/api/coupons/${bob}`, { couponId: percent }));
  const alicePercent = idOf(await post("alice claims percent", "201", `/api/coupons/${alice}`, { couponId: percent }));
  const aliceShort = idOf(
    await post("alice claims short-lived", "201", `/api/coupons/${alice}`, { couponId: shortLived }),
  );
  await get("drop fixed after claims", "200", `/api/coupons/${fixed}`);
  await get("drop single after claims", "200", `/api/coupons/${single}`);

  // Orders that cannot be placed, then discounts.
  await post("coupon of another user", "409 COUPON_NOT_USABLE", "/api/orders", order(alice, [[cheap, 1]], bobPercent));
  await post(
    "order below the coupon's minimum",
    "409 COUPON_NOT_USABLE",
    "/api/orders",
    order(alice, [[cheap, 2]], aliceFixed),
  );
  const fixedOrder = idOf(await post("fixed discount", "201", "/api/orders", order(alice, [[cheap, 3]], aliceFixed)));
  await post("used coupon", "409 COUPON_NOT_USABLE", "/api/orders", order(alice, [[cheap, 3]], aliceFixed));
  await post("percent discount, capped", "201", "/api/orders", order(alice, [[cheap, 20]], alicePercent));
  await post(
    "insufficient stock (after a line that had stock)",
    "409 INSUFFICIENT_STOCK",
    "/api/orders",
    order(alice, [
      [cheap, 1],
      [scarce, 2],
    ]),
  );
  await post("insufficient points", "409 INSUFFICIENT_POINTS", "/api/orders", order(carol, [[scarce, 1]]));
  await post("insufficient stock and points", "409 INSUFFICIENT_STOCK", "/api/orders", order(carol, [[scarce, 2]]));
  // Two faults at once: which one a backend reports first is part of the contract too.
  await post("missing user and product", "404 USER_NOT_FOUND", "/api/orders", order(MISSING, [[MISSING, 1]], MISSING));
  await post(
    "used coupon and insufficient stock",
    "409 COUPON_NOT_USABLE",
    "/api/orders",
    order(alice, [[scarce, 2]], aliceFixed),
  );
  await post(
    "coupon of another user and insufficient points",
    "409 COUPON_NOT_USABLE",
    "/api/orders",
    order(carol, [[scarce, 1]], bobPercent),
  );
  await post(
    "a usable coupon and insufficient stock",
    "409 INSUFFICIENT_STOCK",
    "/api/orders",
    order(bob, [[scarce, 2]], bobPercent),
  );
  await post("missing coupon for a missing user", "404 COUPON_NOT_FOUND", `/api/users/${MISSING}/coupons`, {
    couponId: MISSING,
  });
  server.clock.set(FIXED_MS + 3 * HOUR_MS);
  await post("sold-out drop after the window", "409 COUPON_NOT_ACTIVE", `/api/coupons/${bob}`, { couponId: windowed });
  server.clock.set(FIXED_MS);
  server.clock.set(FIXED_MS + DAY_MS);
  await post("expired coupon", "409 COUPON_NOT_USABLE", "/api/orders", order(alice, [[cheap, 1]], aliceShort));
  await get("alice's coupons once one expired", "200", `/api/users/${alice}/coupons`);
  await get("alice's expired coupons", "200", `/api/users/${alice}/coupons?status=EXPIRED`);
  server.clock.set(FIXED_MS);

  // Idempotency-Key on orders.
  const keyed = order(alice, [[cheap, 2]]);
  await post("order with a key", "201", "/api/orders", keyed, key("order-1"));
  await post("order with a key, replayed", "201", "/api/orders", keyed, key("order-1"));
  await post(
    "order with a key, reused",
    "422 IDEMPOTENCY_KEY_REUSED",
    "/api/orders",
    order(alice, [[cheap, 3]]),
    key("order-1"),
  );
  await post(
    "order with a key, refused",
    "409 INSUFFICIENT_POINTS",
    "/api/orders",
    order(carol, [[scarce, 1]]),
    key("order-2"),
  );
  await post(
    "order with a key, refused, retried",
    "409 INSUFFICIENT_POINTS",
    "/api/orders",
    order(carol, [[scarce, 1]]),
    key("order-2"),
  );
  await post(
    "order with a key for a missing user",
    "404 USER_NOT_FOUND",
    "/api/orders",
    order(MISSING, [[cheap, 1]]),
    key("order-3"),
  );
  await post(
    "order with a key for a missing product",
    "404 PRODUCT_NOT_FOUND",
    "/api/orders",
    order(alice, [[MISSING, 1]]),
    key("order-4"),
  );

  await post(
    "order with a key, reused with a missing product",
    "422 IDEMPOTENCY_KEY_REUSED",
    "/api/orders",
    order(alice, [[MISSING, 1]]),
    key("order-1"),
  );
  await post(
    "order with a key, reused with another user's coupon",
    "422 IDEMPOTENCY_KEY_REUSED",
    "/api/orders",
    order(alice, [[cheap, 1]], bobPercent),
    key("order-1"),
  );
  // Idempotency-Key on charges.
  await post("charge with a key", "200", `/api/users/${bob}/points/charge`, { amount: 300 }, key("charge-1"));
  await post("charge with a key, replayed", "200", `/api/users/${bob}/points/charge`, { amount: 300 }, key("charge-1"));
  await post(
    "charge with a key, reused",
    "422 IDEMPOTENCY_KEY_REUSED",
    `/api/users/${bob}/points/charge`,
    { amount: 301 },
    key("charge-1"),
  );
  await post(
    "the same key for another user",
    "200",
    `/api/users/${carol}/points/charge`,
    { amount: 300 },
    key("charge-1"),
  );
  await post(
    "charge with a key for a missing user",
    "404 USER_NOT_FOUND",
    `/api/users/${MISSING}/points/charge`,
    { amount: 1 },
    key("charge-2"),
  );
  await post(
    "charge with a key for a missing user, retried",
    "404 USER_NOT_FOUND",
    `/api/users/${MISSING}/points/charge`,
    { amount: 1 },
    key("charge-2"),
  );

  // Cancelling.
  await post("cancel", "200", `/api/orders/${fixedOrder}/cancel`);
  await post("cancel twice", "409 ORDER_NOT_CANCELLABLE", `/api/orders/${fixedOrder}/cancel`);
  await get("cancelled order", "200", `/api/orders/${fixedOrder}`);
  await get("stock after the cancel", "200", `/api/products/${cheap}`);
  await get("alice's balance after the cancel", "200", `/api/users/${alice}/points`);
  await post(
    "the cancelled order's coupon is usable again",
    "201",
    "/api/orders",
    order(alice, [[cheap, 4]], aliceFixed),
  );

  // The balance limit.
  const dave = idOf(await post("create dave", "201", "/api/users", { name: "dave" }));
  for (let i = 1; i <= 99; i++) {
    await post(`charge dave 1,000,000 (${i})`, "200", `/api/users/${dave}/points/charge`, { amount: 1_000_000 });
  }
  await post("charge dave to one below the limit", "200", `/api/users/${dave}/points/charge`, { amount: 999_999 });
  await post("charge past the balance limit", "409 BALANCE_LIMIT_EXCEEDED", `/api/users/${dave}/points/charge`, {
    amount: 2,
  });
  await post(
    "charge past the balance limit with a key",
    "409 BALANCE_LIMIT_EXCEEDED",
    `/api/users/${dave}/points/charge`,
    { amount: 2 },
    key("charge-3"),
  );
  await post("charge up to the balance limit", "200", `/api/users/${dave}/points/charge`, { amount: 1 });
  const daveOrder = idOf(await post("dave spends 1,000 at the limit", "201", "/api/orders", order(dave, [[cheap, 1]])));
  await post("charge dave back to the limit", "200", `/api/users/${dave}/points/charge`, { amount: 1000 });
  await post(
    "cancel: a refund past the balance limit",
    "409 BALANCE_LIMIT_EXCEEDED",
    `/api/orders/${daveOrder}/cancel`,
  );
  await get("the order the refund was refused for", "200", `/api/orders/${daveOrder}`);

  await post(
    "charge with a key, replayed after the limit was reached",
    "200",
    `/api/users/${bob}/points/charge`,
    { amount: 300 },
    key("charge-1"),
  );
  await post("order with a key, replayed after its stock ran out", "201", "/api/orders", keyed, key("order-1"));

  // The reads after all of it.
  for (const [name, user] of [
    ["alice", alice],
    ["bob", bob],
    ["carol", carol],
    ["dave", dave],
  ] as const) {
    await get(`${name}: user`, "200", `/api/users/${user}`);
    await get(`${name}: balance`, "200", `/api/users/${user}/points`);
    await get(`${name}: coupons`, "200", `/api/users/${user}/coupons`);
    await get(`${name}: orders`, "200", `/api/users/${user}/orders`);
    await get(`${name}: point history`, "200", `/api/users/${user}/points/history`);
  }
  for (const status of ["AVAILABLE", "USED", "EXPIRED"]) {
    await get(`alice: ${status} coupons`, "200", `/api/users/${alice}/coupons?status=${status}`);
  }
  const firstOrders = await get("alice: orders, first page", "200", `/api/users/${alice}/orders?limit=2`);
  await get(
    "alice: orders, second page",
    "200",
    `/api/users/${alice}/orders?limit=2&cursor=${firstOrders.body.nextCursor}`,
  );
  const firstHistory = await get("alice: history, first page", "200", `/api/users/${alice}/points/history?limit=3`);
  await get(
    "alice: history, second page",
    "200",
    `/api/users/${alice}/points/history?limit=3&cursor=${firstHistory.body.nextCursor}`,
  );
  await get("products", "200", "/api/products");
  await get("popular products", "200", "/api/products/popular");
  for (const [name, coupon] of [
    ["fixed", fixed],
    ["percent", percent],
    ["windowed", windowed],
    ["single", single],
    ["short-lived", shortLived],
  ] as const) {
    await get(`drop ${name}`, "200", `/api/coupons/${coupon}`);
  }
  return steps;
}

const outcome = (answer: Answer) =>
  answer.status < 300 ? String(answer.status) : `${answer.status} ${(answer.body as { code?: string })?.code}`;

/** The steps where `other` answered otherwise than `reference`, each with both answers. */
function differences(reference: Step[], other: Step[], otherName: string): string[] {
  const found: string[] = [];
  for (const [i, step] of reference.entries()) {
    const theirs = other[i];
    if (theirs === undefined || theirs.name !== step.name) {
      found.push(`step ${i} "${step.name}": ${otherName} ran "${theirs?.name}" instead`);
      continue;
    }
    if (JSON.stringify(theirs.answer) !== JSON.stringify(step.answer)) {
      found.push(
        `step "${step.name}": sqlite ${JSON.stringify(step.answer)} but ${otherName} ${JSON.stringify(theirs.answer)}`,
      );
    }
  }
  if (other.length !== reference.length)
    found.push(`${otherName} ran ${other.length} steps, sqlite ${reference.length}`);
  return found;
}

describe("parity of every backend with SQLite", () => {
  // "sqlite again": a second SQLite run. The script is deterministic, so a difference is the backend's own.
  type Run = Backend | "sqlite again";
  const runs = new Map<Run, Promise<Step[]>>();
  const transcript = (run: Run): Promise<Step[]> => {
    let started = runs.get(run);
    if (started === undefined) {
      started = (async () => {
        const server = await startServer({
          backend: run === "sqlite again" ? "sqlite" : run,
          clock: testClock(FIXED_MS),
        });
        try {
          return await transcriptOf(server);
        } finally {
          await server.stop();
        }
      })();
      runs.set(run, started);
    }
    return started;
  };

  test("on SQLite every step gets the answer the script means it to get", async () => {
    const sqlite = await transcript("sqlite");
    const missed = sqlite
      .filter((step) => outcome(step.answer) !== step.intended)
      .map((step) => `step "${step.name}": meant ${step.intended}, got ${JSON.stringify(step.answer)}`);
    expect(missed).toEqual([]);
    expect(sqlite.find((s) => s.name === "order with a key, replayed")?.answer.replayed).toBe("true");
    expect(sqlite.find((s) => s.name === "charge with a key, replayed")?.answer.replayed).toBe("true");
  });

  test.each<Run>([...backends.filter((b) => b !== "sqlite"), "sqlite again"])(
    "%s answers every step as SQLite does",
    async (run) => {
      expect(differences(await transcript("sqlite"), await transcript(run), run)).toEqual([]);
    },
  );
});
