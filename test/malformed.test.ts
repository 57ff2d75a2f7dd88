/**
 * No input produces a 5xx. Broken JSON, wrong types, huge numbers, unknown fields, oversized bodies and
 * bad path or query values are answered with a 4xx problem, and none of them writes anything.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import fc from "fast-check";
import { call, expectProblem, type Reply } from "./support/api.ts";
import { describeOnEveryBackend } from "./support/every-backend.ts";

describeOnEveryBackend(({ server, admin }) => {
  let ids: { user: number; product: number; coupon: number; order: number };

  beforeAll(async () => {
    const user = await admin.user("victim", 10_000);
    const product = await admin.product(1000, 10);
    const coupon = await admin.coupon();
    const order = (await admin.order(user.id, [{ productId: product.id, quantity: 1 }])).body;
    ids = { user: user.id, product: product.id, coupon: coupon.id, order: order.id };
  });

  const counts = () =>
    server.get(
      `SELECT (SELECT count(*) FROM users) AS users, (SELECT count(*) FROM products) AS products,
              (SELECT count(*) FROM coupons) AS coupons, (SELECT count(*) FROM user_coupons) AS held,
              (SELECT count(*) FROM orders WHERE status = 'PAID') AS paid, (SELECT count(*) FROM point_history) AS history,
              (SELECT sum(balance) FROM users) AS balance, (SELECT sum(stock) FROM products) AS stock`,
    );

  /** Every POST route, with a valid body to mutate. */
  const postRoutes = () => [
    { path: "/api/users", valid: { name: "n" } },
    { path: `/api/users/${ids.user}/points/charge`, valid: { amount: 10 } },
    { path: "/api/products", valid: { name: "p", price: 10, stock: 1 }, alsoValid: { stock: [0] } },
    { path: "/api/coupons", valid: { name: "c", discountType: "FIXED", discountValue: 10, totalQuantity: 1 } },
    { path: `/api/coupons/${ids.user}`, valid: { couponId: ids.coupon } },
    { path: `/api/users/${ids.user}/coupons`, valid: { couponId: ids.coupon } },
    { path: "/api/orders", valid: { userId: ids.user, items: [{ productId: ids.product, quantity: 1 }] } },
  ];

  function expect4xx(reply: Reply, context: string): void {
    if (reply.status < 400 || reply.status >= 500) {
      throw new Error(`${context}: expected a 4xx, got ${reply.status} ${JSON.stringify(reply.body)}`);
    }
    expect(reply.headers.get("content-type")).toBe("application/problem+json");
  }

  const brokenJson = [
    "",
    "{",
    '{"name": "a",}',
    '{"a":}',
    "{'name': 'a'}",
    "nul",
    "null",
    "[]",
    '"str"',
    "123",
    "true",
    `${"[".repeat(5000)}${"]".repeat(5000)}`,
    '{"name": "\\ud800"',
    "\u0000",
  ];

  const wrongValues: unknown[] = [
    null,
    true,
    "1",
    "",
    [],
    {},
    [1],
    -1,
    0,
    1.5,
    1e308,
    2 ** 53 + 1,
    -(2 ** 63),
    "NaN",
    "Infinity",
    "x".repeat(101),
  ];

  describe("malformed bodies on every POST route", () => {
    test("broken JSON is 400 VALIDATION_FAILED and writes nothing", async () => {
      const before = await counts();
      for (const { path } of postRoutes()) {
        for (const text of brokenJson) {
          expectProblem(await admin.post(path, text), 400, "VALIDATION_FAILED");
        }
      }
      expect(await counts()).toEqual(before);
    });

    test("every field with every wrong type, and unknown fields, is 400 and writes nothing", async () => {
      const before = await counts();
      for (const { path, valid, alsoValid = {} } of postRoutes()) {
        for (const field of Object.keys(valid)) {
          for (const value of wrongValues) {
            // Any 1..100-character string is a perfectly good name.
            if (field === "name" && typeof value === "string" && value.trim().length > 0 && value.length <= 100)
              continue;
            if ((alsoValid as Record<string, unknown[]>)[field]?.includes(value)) continue;
            const reply = await admin.post(path, { ...valid, [field]: value });
            expect4xx(reply, `${path} ${field}=${JSON.stringify(value)}`);
            expect(reply.body.code).toBe("VALIDATION_FAILED");
          }
        }
        expectProblem(await admin.post(path, { ...valid, isAdmin: true }), 400, "VALIDATION_FAILED");
        expectProblem(
          await admin.post(path, { ...valid, __proto__: { x: 1 }, constructor: 1 }),
          400,
          "VALIDATION_FAILED",
        );
      }
      expect(await counts()).toEqual(before);
    });

    test("bodies of 70 KB are 413 on every route", async () => {
      const big = JSON.stringify({ name: "x".repeat(70 * 1024) });
      for (const { path } of postRoutes()) expectProblem(await admin.post(path, big), 413, "PAYLOAD_TOO_LARGE");
      expectProblem(await admin.post(`/api/orders/${ids.order}/cancel`, big), 413, "PAYLOAD_TOO_LARGE");
    });

    test("non-JSON content types are 415", async () => {
      for (const { path, valid } of postRoutes()) {
        for (const type of ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]) {
          expectProblem(
            await admin.post(path, JSON.stringify(valid), { "content-type": type }),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
          );
        }
      }
    });

    test("names with any printable unicode are stored as given; control characters are refused", async () => {
      for (const name of ["김민수", "🛒".repeat(50), "\u202eevil", "O'Brien; DROP TABLE users"]) {
        const reply = await admin.post("/api/users", { name });
        expect(reply.status).toBe(201);
        expect((await admin.get(`/api/users/${reply.body.id}`)).body.name).toBe(name);
      }
      // Control characters (NUL, tab, newline, …) are refused: PostgreSQL cannot store NUL in text.
      for (const name of ["a\u0000b", "tab\there", "line\nbreak", "bell\u0007"]) {
        expectProblem(await admin.post("/api/users", { name }), 400, "VALIDATION_FAILED");
      }
      // Length counts characters (code points), as SQLite's length() does.
      expectProblem(await admin.post("/api/users", { name: "🛒".repeat(101) }), 400, "VALIDATION_FAILED");
    });

    test("text that is not UTF-8 is 400 VALIDATION_FAILED on every route, never stored as U+FFFD", async () => {
      const notUtf8: [string, number[]][] = [
        ["a byte that never occurs (0xFF)", [0xff]],
        ["a lone continuation byte", [0x80]],
        ["an overlong '/'", [0xc0, 0xaf]],
        ["an encoded surrogate", [0xed, 0xa0, 0x80]],
        ["a sequence cut short", [0xe4, 0xb8]],
        ["a code point past U+10FFFF", [0xf4, 0x90, 0x80, 0x80]],
      ];
      /** The route's valid body with `bytes` inside a string: its first string value, else an extra field's. */
      const withBytes = (valid: Record<string, unknown>, bytes: number[]) => {
        const encode = (text: string) => [...new TextEncoder().encode(text)];
        const json = JSON.stringify(valid);
        const string = json.indexOf('":"') + 3;
        return string > 2
          ? new Uint8Array([...encode(json.slice(0, string)), ...bytes, ...encode(json.slice(string))])
          : new Uint8Array([...encode(`${json.slice(0, -1)},"x":"`), ...bytes, ...encode('"}')]);
      };
      const before = await counts();
      for (const { path, valid } of postRoutes()) {
        for (const [what, bytes] of notUtf8) {
          const reply = await fetch(`${server.url}${path}`, {
            method: "POST",
            headers: { authorization: `Bearer ${admin.token}`, "content-type": "application/json" },
            body: withBytes(valid, bytes),
          });
          const problem = (await reply.json()) as { code?: string };
          expect({ path, what, status: reply.status, code: problem.code }).toEqual({
            path,
            what,
            status: 400,
            code: "VALIDATION_FAILED",
          });
        }
      }
      expect(await counts()).toEqual(before);
      // Valid UTF-8 that escapes half a character (a lone surrogate) is no text either.
      for (const name of ["a\\ud800b", "a\\udc00", "\\udbff"]) {
        for (const path of ["/api/users", "/api/products", "/api/coupons"]) {
          const valid = postRoutes().find((route) => route.path === path)?.valid ?? {};
          const body = JSON.stringify({ ...valid, name: "NAME" }).replace("NAME", name);
          expect({ path, name, status: (await admin.post(path, body)).status }).toEqual({ path, name, status: 400 });
        }
      }
      expect(await counts()).toEqual(before);
      // Valid UTF-8, sent as bytes, is taken, and the name reads back as sent.
      const named = await fetch(`${server.url}/api/users`, {
        method: "POST",
        headers: { authorization: `Bearer ${admin.token}`, "content-type": "application/json; charset=utf-8" },
        body: new TextEncoder().encode('{"name":"ab\u00ffcd \uc0c1\ud83d\uded2"}'),
      });
      expect(named.status).toBe(201);
      expect(((await named.json()) as { name: string }).name).toBe("ab\u00ffcd \uc0c1\ud83d\uded2");
    });
  });

  describe("bad path and query values", () => {
    const badIds = [
      "abc",
      "-1",
      "0",
      "1.0",
      "1e3",
      "2147483648",
      "99999999999999999999",
      "%00",
      "%ZZ",
      "1%20",
      "0x10",
      "１",
    ];
    test("path ids", async () => {
      for (const id of badIds) {
        for (const path of [
          `/api/users/${id}`,
          `/api/users/${id}/points`,
          `/api/users/${id}/points/history`,
          `/api/users/${id}/coupons`,
          `/api/users/${id}/orders`,
          `/api/products/${id}`,
          `/api/coupons/${id}`,
          `/api/orders/${id}`,
        ]) {
          const reply = await admin.get(path);
          expect4xx(reply, path);
        }
        expect4xx(await admin.post(`/api/orders/${id}/cancel`), `cancel ${id}`);
        expect4xx(await admin.post(`/api/coupons/${id}`, { couponId: ids.coupon }), `claim ${id}`);
      }
    });

    test("query values", async () => {
      // Unknown query parameters (cache busters, tracking tags) are ignored; known ones are strict.
      const queries = [
        "limit=-1",
        "limit=1e2",
        "limit=1.5",
        "limit=1&limit=2",
        "cursor=abc",
        "cursor=2147483648",
        "cursor=",
        "limit=",
      ];
      for (const query of queries) {
        for (const path of [
          "/api/products",
          `/api/users/${ids.user}/orders`,
          `/api/users/${ids.user}/points/history`,
        ]) {
          const reply = await admin.get(`${path}?${query}`);
          expect([`${path}?${query}`, reply.status, reply.body?.code]).toEqual([
            `${path}?${query}`,
            400,
            "VALIDATION_FAILED",
          ]);
        }
      }
      for (const query of ["days=-1", "days=abc", "limit=99", "days=1&days=2"]) {
        expectProblem(await admin.get(`/api/products/popular?${query}`), 400, "VALIDATION_FAILED");
      }
      expectProblem(await admin.get(`/api/users/${ids.user}/coupons?status=available`), 400, "VALIDATION_FAILED");
    });
  });

  describe("fuzz", () => {
    test("random JSON documents on every POST route never produce a 5xx", async () => {
      const routes = [...postRoutes().map((r) => r.path), "/api/orders/999999/cancel"];
      await fc.assert(
        fc.asyncProperty(fc.jsonValue({ maxDepth: 4 }), fc.constantFrom(...routes), async (value, path) => {
          const reply = await call(server.url, "POST", path, JSON.stringify(value), {
            authorization: `Bearer ${admin.token}`,
            "content-type": "application/json",
          });
          expect(reply.status).toBeLessThan(500);
        }),
        { numRuns: 400 },
      );
    });

    test("random strings as bodies, ids and headers never produce a 5xx", async () => {
      await fc.assert(
        fc.asyncProperty(fc.string({ maxLength: 200 }), fc.string({ maxLength: 30 }), async (body, segment) => {
          const id = encodeURIComponent(segment);
          const replies = await Promise.all([
            admin.post("/api/orders", body),
            admin.get(`/api/users/${id}`),
            admin.get(`/api/products?cursor=${id}`),
            call(server.url, "GET", `/api/users/${ids.user}`, undefined, {
              authorization: body.replace(/[\r\n]/g, ""),
            }),
            admin.post(
              `/api/users/${ids.user}/points/charge`,
              { amount: 1 },
              { "idempotency-key": segment.replace(/[\r\n]/g, "") },
            ),
          ]);
          for (const reply of replies) expect(reply.status).toBeLessThan(500);
        }),
        { numRuns: 200 },
      );
    });
  });
});
