import { describe, expect, test } from "bun:test";
import { brokenInvariants } from "../../load/invariants.ts";
import { expectProblem } from "../support/api.ts";
import { describeOnEveryBackend } from "../support/every-backend.ts";

describeOnEveryBackend(({ server, admin }) => {
  const balanceInDb = async (userId: number) =>
    ((await server.get("SELECT balance FROM users WHERE id = ?", userId)) as { balance: number }).balance;

  describe("users", () => {
    test("POST /api/users creates a user with balance 0; GET returns it", async () => {
      const created = await admin.post("/api/users", { name: "  Kim  " });
      expect(created.status).toBe(201);
      expect(created.body).toEqual({ id: expect.any(Number), name: "Kim", balance: 0 });
      expect(await admin.get(`/api/users/${created.body.id}`)).toMatchObject({ status: 200, body: created.body });
    });

    test("names are 1..100 characters; unknown fields are refused", async () => {
      for (const body of [
        { name: "" },
        { name: "   " },
        { name: "x".repeat(101) },
        { name: 5 },
        {},
        { name: "a", x: 1 },
      ]) {
        expectProblem(await admin.post("/api/users", body), 400, "VALIDATION_FAILED");
      }
      expect((await admin.post("/api/users", { name: "x".repeat(100) })).status).toBe(201);
    });

    test("an unknown user is 404 USER_NOT_FOUND", async () => {
      expectProblem(await admin.get("/api/users/999999"), 404, "USER_NOT_FOUND");
      expectProblem(await admin.get("/api/users/999999/points"), 404, "USER_NOT_FOUND");
      expectProblem(await admin.get("/api/users/999999/points/history"), 404, "USER_NOT_FOUND");
      expectProblem(await admin.post("/api/users/999999/points/charge", { amount: 1 }), 404, "USER_NOT_FOUND");
    });

    test.each(["abc", "0", "-1", "1.5", "01", "1e3", "2147483648", "99999999999999999999"])(
      "path id %p is a 400",
      async (id) => {
        expectProblem(await admin.get(`/api/users/${id}`), 400, "VALIDATION_FAILED");
      },
    );
  });

  describe("points", () => {
    test("charging adds points and writes a CHARGE history row", async () => {
      const user = await admin.user("charger");
      const me = await server.as(user.id);
      expect(await me.post(`/api/users/${user.id}/points/charge`, { amount: 1500 })).toMatchObject({
        status: 200,
        body: { userId: user.id, balance: 1500 },
      });
      expect((await me.get(`/api/users/${user.id}/points`)).body).toEqual({ userId: user.id, balance: 1500 });
      const history = await me.get(`/api/users/${user.id}/points/history`);
      expect(history.body).toEqual({
        items: [
          {
            id: expect.any(Number),
            type: "CHARGE",
            amount: 1500,
            balanceAfter: 1500,
            orderId: null,
            createdAt: expect.any(String),
          },
        ],
        nextCursor: null,
      });
    });

    test("amounts are integers 1..1,000,000", async () => {
      const user = await admin.user("bounds");
      for (const amount of [0, -5, 1.5, 1_000_001, "100", null, 1e308]) {
        expectProblem(await admin.post(`/api/users/${user.id}/points/charge`, { amount }), 400, "VALIDATION_FAILED");
      }
      expect(await balanceInDb(user.id)).toBe(0);
    });

    test("a balance never exceeds 100,000,000: the charge that would pass it is refused whole", async () => {
      const user = await admin.user("rich");
      for (let i = 0; i < 99; i++) await admin.charge(user.id, 1_000_000);
      expect((await admin.charge(user.id, 999_999)).balance).toBe(99_999_999);
      expectProblem(
        await admin.post(`/api/users/${user.id}/points/charge`, { amount: 2 }),
        409,
        "BALANCE_LIMIT_EXCEEDED",
      );
      expect(await balanceInDb(user.id)).toBe(99_999_999);
      expect((await admin.charge(user.id, 1)).balance).toBe(100_000_000);
      expect(await brokenInvariants(server.db)).toEqual([]);
    });

    test("history is newest first and pages walk every entry once", async () => {
      const user = await admin.user("history");
      for (let amount = 1; amount <= 7; amount++) await admin.charge(user.id, amount);
      const seen: number[] = [];
      let cursor: string | null = null;
      do {
        const query: string = cursor === null ? "?limit=3" : `?limit=3&cursor=${cursor}`;
        const page = await admin.get(`/api/users/${user.id}/points/history${query}`);
        expect(page.status).toBe(200);
        expect(page.body.items.length).toBeLessThanOrEqual(3);
        seen.push(...page.body.items.map((item: { amount: number }) => item.amount));
        cursor = page.body.nextCursor;
      } while (cursor !== null);
      expect(seen).toEqual([7, 6, 5, 4, 3, 2, 1]);
      expect((await admin.get(`/api/users/${user.id}/points/history`)).body.items).toHaveLength(7);
      for (const query of ["?limit=0", "?limit=101", "?limit=abc", "?cursor=abc", "?cursor=-1"]) {
        expectProblem(await admin.get(`/api/users/${user.id}/points/history${query}`), 400, "VALIDATION_FAILED");
      }
    });
  });

  describe("Idempotency-Key on a charge", () => {
    test("the same key and body is charged once and replays the stored response", async () => {
      const user = await admin.user("idem");
      const me = await server.as(user.id);
      const key = { "idempotency-key": "charge-1" };
      const first = await me.post(`/api/users/${user.id}/points/charge`, { amount: 300 }, key);
      const again = await me.post(`/api/users/${user.id}/points/charge`, { amount: 300 }, key);
      expect(first).toMatchObject({ status: 200, body: { userId: user.id, balance: 300 } });
      expect(first.headers.get("idempotent-replayed")).toBeNull();
      expect(again).toMatchObject({ status: 200, body: { userId: user.id, balance: 300 } });
      expect(again.headers.get("idempotent-replayed")).toBe("true");
      expect(await balanceInDb(user.id)).toBe(300);

      expectProblem(
        await me.post(`/api/users/${user.id}/points/charge`, { amount: 301 }, key),
        422,
        "IDEMPOTENCY_KEY_REUSED",
      );
      expect(await balanceInDb(user.id)).toBe(300);
    });

    test("keys are scoped to the user", async () => {
      const a = await admin.user("a");
      const b = await admin.user("b");
      const key = { "idempotency-key": "same-key" };
      expect((await admin.post(`/api/users/${a.id}/points/charge`, { amount: 5 }, key)).body.balance).toBe(5);
      expect((await admin.post(`/api/users/${b.id}/points/charge`, { amount: 5 }, key)).body.balance).toBe(5);
      expect([await balanceInDb(a.id), await balanceInDb(b.id)]).toEqual([5, 5]);
    });

    test("a failed request stores nothing: the same key may be retried once it can succeed", async () => {
      const user = await admin.user("retry");
      for (let i = 0; i < 99; i++) await admin.charge(user.id, 1_000_000);
      await admin.charge(user.id, 500_000);
      const key = { "idempotency-key": "after-failure" };
      const charge = () => admin.post(`/api/users/${user.id}/points/charge`, { amount: 1_000_000 }, key);
      expectProblem(await charge(), 409, "BALANCE_LIMIT_EXCEEDED");

      const product = await admin.product(600_000, 1);
      expect((await admin.order(user.id, [{ productId: product.id, quantity: 1 }])).status).toBe(201);
      expect(await charge()).toMatchObject({ status: 200, body: { balance: 99_900_000 } });
      expect((await charge()).headers.get("idempotent-replayed")).toBe("true");
      expect(await balanceInDb(user.id)).toBe(99_900_000);
    });

    test.each(["has space", "x".repeat(256), "é"])("key %p is a 400", async (bad) => {
      const user = await admin.user("badkey");
      expectProblem(
        await admin.post(`/api/users/${user.id}/points/charge`, { amount: 1 }, { "idempotency-key": bad }),
        400,
        "VALIDATION_FAILED",
      );
    });
  });
});
