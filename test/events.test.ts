/**
 * The outbox over HTTP, on SQLite and every PostgreSQL strategy: each committed write has exactly one
 * event, written with it (a refused or rolled-back write has none), carrying the API's own answer;
 * the feed is admin-only, oldest first, paged by id; retention keeps what a sink has not received.
 */
import { describe, expect, test } from "bun:test";
import type postgres from "postgres";
import { brokenEventInvariants, brokenInvariants } from "../load/invariants.ts";
import { DAY_MS } from "../src/domain/limits.ts";
import { expectProblem } from "./support/api.ts";
import { describeOnEveryBackend } from "./support/every-backend.ts";
import { backends, startServer } from "./support/server.ts";

interface Envelope {
  id: number;
  type: string;
  occurredAt: string;
  data: Record<string, unknown>;
}

describeOnEveryBackend({ serverPer: "test" }, ({ server, admin }) => {
  /** Every event, oldest first, read page by page through the feed. */
  async function feed(pageSize = 1000): Promise<Envelope[]> {
    const events: Envelope[] = [];
    for (let after = 0; ; ) {
      const page = await admin.get(`/api/events?after=${after}&limit=${pageSize}`);
      expect(page.status).toBe(200);
      events.push(...page.body.items);
      if (page.body.nextCursor === null) return events;
      after = Number(page.body.nextCursor);
    }
  }

  test("each write's event carries its answer; the drop that sells out says so once, as GET shows it", async () => {
    const buyer = await admin.user("kim");
    const charged = await admin.post(`/api/users/${buyer.id}/points/charge`, { amount: 50_000 });
    const product = await admin.product(1000, 50);
    const drop = await admin.coupon({ totalQuantity: 1, discountValue: 500 });
    const claimed = await admin.issue(buyer.id, drop.id);
    const soldOut = await admin.get(`/api/coupons/${drop.id}`);
    const paid = await admin.order(buyer.id, [{ productId: product.id, quantity: 2 }], claimed.body.id);
    const cancelled = await admin.post(`/api/orders/${paid.body.id}/cancel`);
    expect([charged.status, claimed.status, paid.status, cancelled.status]).toEqual([200, 201, 201, 200]);

    const events = await feed();
    expect(events.map((event) => [event.type, event.data])).toEqual([
      ["points.charged", charged.body],
      ["coupon.claimed", claimed.body],
      ["coupon.sold_out", soldOut.body],
      ["order.paid", paid.body],
      ["order.cancelled", cancelled.body],
    ]);
    expect(soldOut.body).toMatchObject({ issuedQuantity: 1, remainingQuantity: 0 });
    // Ids increase in commit order; occurredAt is the write's own instant.
    expect(events.map((event) => event.id)).toEqual([...events.map((event) => event.id)].sort((a, b) => a - b));
    expect(new Set(events.map((event) => event.id)).size).toBe(5);
    expect(events[3]?.occurredAt).toBe(paid.body.createdAt);
    expect(events[4]?.occurredAt).toBe(cancelled.body.cancelledAt);
  });

  test("a refused or replayed write leaves no event", async () => {
    const buyer = await admin.user("lee");
    const product = await admin.product(1000, 1);
    const drop = await admin.coupon({ totalQuantity: 1 });
    const other = await admin.user("park");
    await admin.issue(other.id, drop.id);
    // The buyer at the balance cap (100,000,000): a charge of 1,000,000 at most at a time.
    for (let i = 0; i < 100; i++) await admin.charge(buyer.id, 1_000_000);
    const before = (await feed()).length;

    expectProblem(await admin.order(other.id, [{ productId: product.id, quantity: 1 }]), 409, "INSUFFICIENT_POINTS");
    expectProblem(await admin.issue(buyer.id, drop.id), 409, "COUPON_SOLD_OUT");
    expectProblem(await admin.issue(other.id, drop.id), 409, "COUPON_ALREADY_ISSUED");
    expectProblem(
      await admin.post(`/api/users/${buyer.id}/points/charge`, { amount: 1 }),
      409,
      "BALANCE_LIMIT_EXCEEDED",
    );
    const line = [{ productId: product.id, quantity: 1 }];
    const order = await admin.order(buyer.id, line, undefined, { "idempotency-key": "once" });
    const replay = await admin.order(buyer.id, line, undefined, { "idempotency-key": "once" });
    expect([order.status, replay.status, replay.headers.get("idempotent-replayed")]).toEqual([201, 201, "true"]);
    expectProblem(await admin.order(buyer.id, line), 409, "INSUFFICIENT_STOCK");
    // Back at the cap, the refund would pass it: the whole cancel is refused, the order stays PAID.
    await admin.charge(buyer.id, 1000);
    expectProblem(await admin.post(`/api/orders/${order.body.id}/cancel`), 409, "BALANCE_LIMIT_EXCEEDED");

    const after = (await feed()).slice(before);
    expect(after.map((event) => event.type)).toEqual(["order.paid", "points.charged"]);
    expect(await brokenEventInvariants(server.db)).toEqual([]);
  });

  test("a stampede: every claim and order has exactly one event, one coupon.sold_out, ids strictly increasing", async () => {
    const drop = await admin.coupon({ totalQuantity: 40, discountValue: 100 });
    const product = await admin.product(100, 10_000);
    const users = await Promise.all(Array.from({ length: 80 }, (_, i) => admin.user(`u${i}`, 5_000)));
    const claims = await Promise.all(users.map((user) => admin.issue(user.id, drop.id)));
    expect(claims.filter((reply) => reply.status === 201).length).toBe(40);
    const orders = await Promise.all(
      users.flatMap((user) => [1, 2].map((quantity) => admin.order(user.id, [{ productId: product.id, quantity }]))),
    );
    expect(orders.every((reply) => reply.status === 201)).toBe(true);

    const events = await feed(37);
    const ids = events.map((event) => event.id);
    expect(ids.every((id, i) => i === 0 || id > (ids[i - 1] as number))).toBe(true);
    const count = (type: string) => events.filter((event) => event.type === type).length;
    expect([count("coupon.claimed"), count("coupon.sold_out"), count("order.paid"), count("points.charged")]).toEqual([
      40, 1, 160, 80,
    ]);
    expect(await brokenEventInvariants(server.db)).toEqual([]);
    expect(await brokenInvariants(server.db)).toEqual([]);
  });

  test("the feed is for admins only, validated, paged by id with the project's nextCursor", async () => {
    const buyer = await admin.user("choi");
    for (let i = 0; i < 5; i++) await admin.charge(buyer.id, 10);
    expectProblem(await server.anonymous.get("/api/events"), 401, "UNAUTHENTICATED");
    expectProblem(await (await server.as(buyer.id)).get("/api/events"), 403, "FORBIDDEN");
    for (const query of ["after=-1", "after=x", "limit=0", "limit=1001", "after=1e3"]) {
      expectProblem(await admin.get(`/api/events?${query}`), 400, "VALIDATION_FAILED");
    }
    const all = await admin.get("/api/events");
    expect(all.headers.get("content-type")).toStartWith("application/json");
    expect(all.body.items.length).toBe(5);
    expect(all.body.nextCursor).toBeNull();
    const first = await admin.get("/api/events?limit=2");
    expect(first.body.items).toEqual(all.body.items.slice(0, 2));
    expect(first.body.nextCursor).toBe(String(all.body.items[1].id));
    const rest = await admin.get(`/api/events?after=${first.body.nextCursor}&limit=10`);
    expect(rest.body).toEqual({ items: all.body.items.slice(2), nextCursor: null });
    expect((await admin.get(`/api/events?after=${all.body.items[4].id}`)).body).toEqual({
      items: [],
      nextCursor: null,
    });
  });

  test("retention deletes old events only once every sink named has received them; ids never restart", async () => {
    const buyer = await admin.user("jung");
    const { clock } = server;
    const start = clock.now();
    clock.set(start - 10 * DAY_MS);
    for (let i = 0; i < 4; i++) await admin.charge(buyer.id, 10);
    clock.set(start);
    await admin.charge(buyer.id, 10);
    const ids = (await feed()).map((event) => event.id);
    const { outbox } = server.store;

    await outbox.markDelivered("webhook", ids[1] as number);
    expect(await outbox.oldestUndelivered("webhook")).toBe(start - 10 * DAY_MS);
    // Older than 7 days, but only the first two reached the webhook; NATS has received none.
    expect(await outbox.purgeEvents(start - 7 * DAY_MS, ["webhook", "nats"])).toBe(0);
    expect(await outbox.purgeEvents(start - 7 * DAY_MS, ["webhook"])).toBe(2);
    expect((await feed()).map((event) => event.id)).toEqual(ids.slice(2));
    // A cursor never moves back.
    await outbox.markDelivered("webhook", ids[0] as number);
    expect(await outbox.deliveredTo("webhook")).toBe(ids[1] as number);
    // No sink: whatever is old goes, but for the newest; later ids go on from the last one.
    expect(await outbox.purgeEvents(start + DAY_MS, [])).toBe(2);
    await admin.charge(buyer.id, 10);
    expect((await feed()).map((event) => event.id)).toEqual([ids[4] as number, (ids[4] as number) + 1]);
  });
});

describe("with EVENTS=off", () => {
  test("writes record nothing and the feed is empty", async () => {
    const server = await startServer({ events: false });
    try {
      const buyer = await server.admin.user("kang", 10_000);
      const drop = await server.admin.coupon({ totalQuantity: 1 });
      expect((await server.admin.issue(buyer.id, drop.id)).status).toBe(201);
      expect((await server.admin.get("/api/events")).body).toEqual({ items: [], nextCursor: null });
      expect(await server.all("SELECT * FROM events")).toEqual([]);
    } finally {
      await server.stop();
    }
  });
});

describe.each(backends.filter((backend) => backend === "pg-atomic"))("PostgreSQL's sequencer (%s)", (backend) => {
  test("an event committed after a later one still gets an id after every id already read: none is skipped", async () => {
    const server = await startServer({ backend });
    const sql = server.db as postgres.Sql;
    try {
      const buyer = await server.admin.user("yoon");
      const schema = (await sql`SELECT current_schema() AS s`)[0]?.s as string;
      // A transaction takes its seq first and stays open, while a later write commits.
      const slow = await sql.reserve();
      await slow`BEGIN`;
      await slow.unsafe(`SET LOCAL search_path = "${schema}"`);
      await slow`INSERT INTO event_records (type, occurred_at, data) VALUES ('points.charged', 1, '{"userId":0,"balance":0}')`;
      await server.admin.charge(buyer.id, 10);
      const seen = (await server.admin.get("/api/events")).body.items as Envelope[];
      expect(seen.map((event) => event.type)).toEqual(["points.charged"]);
      expect(seen[0]?.data).toEqual({ userId: buyer.id, balance: 10 });
      // Its seq is larger than the open transaction's, yet it got the first id: ids follow commits.
      await slow`COMMIT`;
      slow.release();
      const after = (await server.admin.get(`/api/events?after=${seen[0]?.id}`)).body.items as Envelope[];
      expect(after.map((event) => [event.id, event.data])).toEqual([
        [(seen[0]?.id as number) + 1, { userId: 0, balance: 0 }],
      ]);
      const rows = await server.all("SELECT seq, id FROM events ORDER BY id");
      expect((rows[0]?.seq as number) > (rows[1]?.seq as number)).toBe(true);
    } finally {
      await server.stop();
    }
  });
});
