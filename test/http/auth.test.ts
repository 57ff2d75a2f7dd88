/**
 * Nobody acts for anyone else: every route × {anonymous, user A, user B, admin} answers exactly as the
 * policy says, and a refused request (401/403) leaves the database byte-for-byte as it was.
 */
import { describe, expect, test } from "bun:test";
import { SignJWT } from "jose";
import { type Client, call, expectProblem } from "../support/api.ts";
import { describeOnEveryBackend } from "../support/every-backend.ts";
import { startServer, tokenFor } from "../support/server.ts";

describeOnEveryBackend(({ backend, server }) => {
  const TABLES = [
    "users",
    "products",
    "coupons",
    "user_coupons",
    "orders",
    "order_items",
    "point_history",
    "idempotency_keys",
  ];
  async function dump(): Promise<string> {
    const tables = [];
    for (const table of TABLES) tables.push(await server.all(`SELECT * FROM ${table} ORDER BY 1, 2`));
    return JSON.stringify(tables);
  }

  type Who = "anonymous" | "userB" | "userA" | "admin";
  const CALLERS: Who[] = ["anonymous", "userB", "userA", "admin"];

  describe("the authorization matrix", () => {
    test("every route answers each caller exactly as the policy says", async () => {
      const admin = server.admin;
      const a = await admin.user("alice", 100_000);
      const b = await admin.user("bob", 100_000);
      const product = await admin.product(1000, 1000);
      const legacyDrop = await admin.coupon({ totalQuantity: 100 });
      const drop = await admin.coupon({ totalQuantity: 100 });
      const callers: Record<Who, Client> = {
        anonymous: server.anonymous,
        userA: await server.as(a.id),
        userB: await server.as(b.id),
        admin,
      };
      const orderOfA = (await callers.userA.order(a.id, [{ productId: product.id, quantity: 1 }])).body.id;
      const line = [{ productId: product.id, quantity: 1 }];

      // [method, path, body, expected status for anonymous, user B, user A, admin] — callers go in that order.
      const matrix: [string, string, unknown, number, number, number, number][] = [
        ["GET", "/health", undefined, 200, 200, 200, 200],
        ["GET", "/ready", undefined, 200, 200, 200, 200],
        ["GET", "/openapi.json", undefined, 200, 200, 200, 200],
        ["GET", "/docs", undefined, 200, 200, 200, 200],
        ["GET", "/api/products", undefined, 200, 200, 200, 200],
        ["GET", `/api/products/${product.id}`, undefined, 200, 200, 200, 200],
        ["GET", "/api/products/popular", undefined, 200, 200, 200, 200],
        ["GET", `/api/coupons/${drop.id}`, undefined, 200, 200, 200, 200],
        ["POST", "/api/users", { name: "new" }, 401, 403, 403, 201],
        ["POST", "/api/products", { name: "p", price: 1, stock: 1 }, 401, 403, 403, 201],
        [
          "POST",
          "/api/coupons",
          { name: "c", discountType: "FIXED", discountValue: 1, totalQuantity: 1 },
          401,
          403,
          403,
          201,
        ],
        ["GET", `/api/users/${a.id}`, undefined, 401, 403, 200, 200],
        ["GET", `/api/users/${a.id}/points`, undefined, 401, 403, 200, 200],
        ["POST", `/api/users/${a.id}/points/charge`, { amount: 10 }, 401, 403, 200, 200],
        ["GET", `/api/users/${a.id}/points/history`, undefined, 401, 403, 200, 200],
        ["POST", `/api/coupons/${a.id}`, { couponId: legacyDrop.id }, 401, 403, 201, 409],
        ["POST", `/api/users/${a.id}/coupons`, { couponId: drop.id }, 401, 403, 201, 409],
        ["GET", `/api/users/${a.id}/coupons`, undefined, 401, 403, 200, 200],
        ["POST", "/api/orders", { userId: a.id, items: line }, 401, 403, 201, 201],
        ["GET", `/api/orders/${orderOfA}`, undefined, 401, 404, 200, 200],
        ["GET", `/api/users/${a.id}/orders`, undefined, 401, 403, 200, 200],
        ["POST", `/api/orders/${orderOfA}/cancel`, undefined, 401, 404, 200, 409],
      ];

      const seen: string[] = [];
      const want: string[] = [];
      for (const [method, path, body, ...statuses] of matrix) {
        for (const [i, who] of CALLERS.entries()) {
          const before = await dump();
          const reply = method === "GET" ? await callers[who].get(path) : await callers[who].post(path, body);
          seen.push(`${who} ${method} ${path} → ${reply.status}`);
          want.push(`${who} ${method} ${path} → ${statuses[i]}`);
          if (reply.status === 401) expectProblem(reply, 401, "UNAUTHENTICATED");
          if (reply.status === 403) expectProblem(reply, 403, "FORBIDDEN");
          if (reply.status === 404) expectProblem(reply, 404, "ORDER_NOT_FOUND");
          if (reply.status === 401 || reply.status === 403 || reply.status === 404) expect(await dump()).toBe(before);
        }
      }
      expect(seen).toEqual(want);
    });

    test("a user cannot spend another user's coupon, and cannot order as someone else", async () => {
      const admin = server.admin;
      const a = await admin.user("a", 10_000);
      const b = await admin.user("b", 10_000);
      const product = await admin.product(1000, 10);
      const asA = await server.as(a.id);
      const asB = await server.as(b.id);
      const heldByA = (await asA.issue(a.id, (await admin.coupon()).id)).body.id;
      const before = await dump();
      expectProblem(await asB.order(b.id, [{ productId: product.id, quantity: 1 }], heldByA), 409, "COUPON_NOT_USABLE");
      expectProblem(await asB.order(a.id, [{ productId: product.id, quantity: 1 }], heldByA), 403, "FORBIDDEN");
      expect(await dump()).toBe(before);
    });
  });

  describe("nothing tells whether another user's data exists", () => {
    /** Status, content type and problem, with the id asked for written as "<id>" in its detail. */
    const shape = (reply: { status: number; headers: Headers; body: any }, id: number) => ({
      status: reply.status,
      contentType: reply.headers.get("content-type"),
      body: { ...reply.body, detail: String(reply.body.detail).replace(new RegExp(`\\b${id}\\b`, "g"), "<id>") },
    });

    test("another user's order, paid or cancelled, is answered exactly as a missing one: read and cancel", async () => {
      const admin = server.admin;
      const a = await admin.user("a", 10_000);
      const b = await admin.user("b", 10_000);
      const product = await admin.product(1000, 10);
      const asA = await server.as(a.id);
      const asB = await server.as(b.id);
      const paid = (await asA.order(a.id, [{ productId: product.id, quantity: 1 }])).body.id;
      const cancelled = (await asA.order(a.id, [{ productId: product.id, quantity: 1 }])).body.id;
      expect((await asA.post(`/api/orders/${cancelled}/cancel`)).status).toBe(200);
      const missing = cancelled + 1000;
      const before = await dump();

      const missingRead = shape(await asB.get(`/api/orders/${missing}`), missing);
      const missingCancel = shape(await asB.post(`/api/orders/${missing}/cancel`), missing);
      expect(missingRead).toMatchObject({ status: 404, body: { code: "ORDER_NOT_FOUND" } });
      for (const id of [paid, cancelled]) {
        expect(shape(await asB.get(`/api/orders/${id}`), id)).toEqual(missingRead);
        expect(shape(await asB.post(`/api/orders/${id}/cancel`), id)).toEqual(missingCancel);
      }
      expect(await dump()).toBe(before);
      // Admins still see (and may cancel) every order, and tell a missing one apart.
      expect((await admin.get(`/api/orders/${paid}`)).status).toBe(200);
      expect((await admin.post(`/api/orders/${cancelled}/cancel`)).body.code).toBe("ORDER_NOT_CANCELLABLE");
    });

    test("every route that names a user or a user coupon answers another's exactly as a missing one", async () => {
      const admin = server.admin;
      const a = await admin.user("a", 10_000);
      const b = await admin.user("b", 10_000);
      const product = await admin.product(1000, 10);
      const drop = await admin.coupon({ totalQuantity: 10 });
      const asA = await server.as(a.id);
      const asB = await server.as(b.id);
      const heldByA = (await asA.issue(a.id, drop.id)).body.id;
      const missingUser = b.id + 1000;
      const missingCoupon = heldByA + 1000;
      const line = [{ productId: product.id, quantity: 1 }];
      const before = await dump();

      const routes: [string, (user: number) => string, unknown][] = [
        ["GET", (u) => `/api/users/${u}`, undefined],
        ["GET", (u) => `/api/users/${u}/points`, undefined],
        ["POST", (u) => `/api/users/${u}/points/charge`, { amount: 1 }],
        ["GET", (u) => `/api/users/${u}/points/history`, undefined],
        ["GET", (u) => `/api/users/${u}/coupons`, undefined],
        ["POST", (u) => `/api/coupons/${u}`, { couponId: drop.id }],
        ["POST", (u) => `/api/users/${u}/coupons`, { couponId: drop.id }],
        ["GET", (u) => `/api/users/${u}/orders`, undefined],
      ];
      const send = (method: string, path: string, body: unknown) =>
        method === "GET" ? asB.get(path) : asB.post(path, body);
      for (const [method, path, body] of routes) {
        const theirs = shape(await send(method, path(a.id), body), a.id);
        expect(theirs).toMatchObject({ status: 403 });
        expect(theirs).toEqual(shape(await send(method, path(missingUser), body), missingUser));
      }
      // Ordering as someone else, and paying with someone else's coupon.
      const asSomeoneElse = shape(await asB.order(a.id, line), a.id);
      expect(asSomeoneElse).toEqual(shape(await asB.order(missingUser, line), missingUser));
      const theirCoupon = shape(await asB.order(b.id, line, heldByA), heldByA);
      expect(theirCoupon).toMatchObject({ status: 409, body: { code: "COUPON_NOT_USABLE" } });
      expect(theirCoupon).toEqual(shape(await asB.order(b.id, line, missingCoupon), missingCoupon));
      expect(await dump()).toBe(before);
    });
  });

  describe("tokens", () => {
    const now = () => Math.floor(Date.now() / 1000);
    const sign = (claims: Record<string, unknown>, secret = server.secret, alg = "HS256") =>
      new SignJWT(claims).setProtectedHeader({ alg, typ: "JWT" }).sign(secret);
    const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

    test.each<[string, () => Promise<string>]>([
      ["expired", () => sign({ sub: "1", role: "admin", exp: now() - 10, iat: now() - 100 })],
      ["not yet valid", () => sign({ sub: "1", role: "admin", exp: now() + 600, nbf: now() + 300 })],
      ["without exp", () => sign({ sub: "1", role: "admin", iat: now() })],
      [
        "signed with another secret",
        () => sign({ sub: "1", role: "admin", exp: now() + 600 }, new TextEncoder().encode("x".repeat(32))),
      ],
      ["signed with HS512", () => sign({ sub: "1", role: "admin", exp: now() + 600 }, server.secret, "HS512")],
      [
        "alg none",
        async () => `${b64({ alg: "none", typ: "JWT" })}.${b64({ sub: "1", role: "admin", exp: now() + 600 })}.`,
      ],
      ["with a numeric sub", () => sign({ sub: 1, role: "user", exp: now() + 600 })],
      ["with a non-numeric user sub", () => sign({ sub: "alice", role: "user", exp: now() + 600 })],
      ["without a role", () => sign({ sub: "1", exp: now() + 600 })],
      ["with an unknown role", () => sign({ sub: "1", role: "root", exp: now() + 600 })],
      ["garbage", async () => "not-a-token"],
      ["three garbage segments", async () => "a.b.c"],
      [
        "a tampered payload",
        async () => {
          const [header, , signature] = (await tokenFor(server.secret, 5)).split(".");
          return `${header}.${b64({ sub: "5", role: "admin", exp: now() + 600 })}.${signature}`;
        },
      ],
    ])("a token %s is 401 with WWW-Authenticate, even on a public route", async (_, make) => {
      const token = await make();
      for (const path of ["/api/users/1", "/api/products"]) {
        const reply = await call(server.url, "GET", path, undefined, { authorization: `Bearer ${token}` });
        expectProblem(reply, 401, "UNAUTHENTICATED");
        expect(reply.headers.get("www-authenticate")).toBe('Bearer realm="flashcart"');
      }
    });

    test("a malformed Authorization header is 401; none at all is 401 only where a token is needed", async () => {
      for (const header of ["Bearer", "Basic dXNlcjpwYXNz", "Bearer  ", "token abc"]) {
        expectProblem(
          await call(server.url, "GET", "/api/users/1", undefined, { authorization: header }),
          401,
          "UNAUTHENTICATED",
        );
      }
      expectProblem(await server.anonymous.get("/api/users/1"), 401, "UNAUTHENTICATED");
      expect((await server.anonymous.get("/api/products")).status).toBe(200);
    });
  });

  describe("rate limits", () => {
    test("a burst beyond the limit gets 429 with Retry-After; another user is unaffected", async () => {
      const limited = await startServer({ backend, rateLimits: { windowMs: 60_000, couponClaims: 5, orders: 3 } });
      try {
        const admin = limited.admin;
        const [a, b] = [await admin.user("a", 100_000), await admin.user("b", 100_000)];
        const asA = await limited.as(a.id);
        const asB = await limited.as(b.id);
        const coupons = [];
        for (let i = 0; i < 8; i++) coupons.push(await admin.coupon({ totalQuantity: 10 }));
        const product = await admin.product(10, 1000);

        const claims = await Promise.all(coupons.map((c) => asA.issue(a.id, c.id)));
        expect(claims.filter((r) => r.status === 201)).toHaveLength(5);
        const refused = claims.filter((r) => r.status === 429);
        expect(refused).toHaveLength(3);
        for (const reply of refused) {
          expectProblem(reply, 429, "RATE_LIMITED");
          expect(Number(reply.headers.get("retry-after"))).toBeGreaterThan(0);
        }
        expect(await limited.get("SELECT count(*) AS n FROM user_coupons")).toEqual({ n: 5 });
        expect((await asB.issue(b.id, coupons[7]?.id as number)).status).toBe(201);

        // Orders have their own budget.
        const orders = await Promise.all(
          Array.from({ length: 5 }, () => asA.order(a.id, [{ productId: product.id, quantity: 1 }])),
        );
        expect(orders.map((r) => r.status).sort()).toEqual([201, 201, 201, 429, 429]);
        expect((await asB.order(b.id, [{ productId: product.id, quantity: 1 }])).status).toBe(201);
        // Reads are not limited.
        expect((await asA.get(`/api/users/${a.id}`)).status).toBe(200);
      } finally {
        await limited.stop();
      }
    });
  });
});
