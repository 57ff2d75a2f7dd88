import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { HEAP_SPACE_GAUGES } from "../../src/observability/metrics.ts";
import { startServer, type TestServer } from "../support/server.ts";

describe("observability", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(() => server.stop());

  test("a sane X-Request-Id is echoed; otherwise a new UUID is issued", async () => {
    expect(
      (await server.anonymous.get("/health", { "x-request-id": "trace-42.a:b" })).headers.get("x-request-id"),
    ).toBe("trace-42.a:b");
    const offered: Record<string, string>[] = [
      {},
      { "x-request-id": "has spaces" },
      { "x-request-id": "x".repeat(129) },
    ];
    for (const headers of offered) {
      const id = (await server.anonymous.get("/health", headers)).headers.get("x-request-id");
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    }
    // Error responses carry it too.
    expect((await server.anonymous.get("/nope", { "x-request-id": "r1" })).headers.get("x-request-id")).toBe("r1");
  });

  test("/metrics reports the heap's size but not the heap-space gauges, whose collection walks the whole heap", async () => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(text).toMatch(/^nodejs_heap_size_used_bytes \d+/m);
    expect(text).toMatch(/^process_resident_memory_bytes \d+/m);
    for (const name of HEAP_SPACE_GAUGES) expect(text).not.toContain(name);
  });

  test("/metrics counts requests by route template, claims and orders by outcome, and store operations", async () => {
    const admin = server.admin;
    const user = await admin.user("m", 10_000);
    const me = await server.as(user.id);
    const coupon = await admin.coupon({ totalQuantity: 5 });
    const product = await admin.product(100, 5);
    expect((await me.issue(user.id, coupon.id)).status).toBe(201);
    expect((await me.issue(user.id, coupon.id)).status).toBe(409);
    expect((await me.order(user.id, [{ productId: product.id, quantity: 1 }])).status).toBe(201);
    expect((await me.order(user.id, [{ productId: product.id, quantity: 9 }])).status).toBe(409);
    await me.get(`/api/users/${user.id}`);

    const res = await fetch(`${server.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/plain");
    const text = await res.text();
    const value = (series: string) => {
      const line = text.split("\n").find((l) => l.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    };
    expect(
      value('flashcart_http_request_duration_seconds_count{method="POST",route="/api/coupons/:userId",status="201"}'),
    ).toBe(1);
    expect(
      value('flashcart_http_request_duration_seconds_count{method="POST",route="/api/coupons/:userId",status="409"}'),
    ).toBe(1);
    expect(
      value('flashcart_http_request_duration_seconds_count{method="GET",route="/api/users/:userId",status="200"}'),
    ).toBe(1);
    expect(value('flashcart_coupon_claims_total{outcome="claimed"}')).toBe(1);
    expect(value('flashcart_coupon_claims_total{outcome="COUPON_ALREADY_ISSUED"}')).toBe(1);
    expect(value('flashcart_orders_total{outcome="paid"}')).toBe(1);
    expect(value('flashcart_orders_total{outcome="INSUFFICIENT_STOCK"}')).toBe(1);
    expect(value('flashcart_db_operation_duration_seconds_count{operation="claimCoupon",result="ok"}')).toBe(1);
    expect(value('flashcart_db_operation_duration_seconds_count{operation="claimCoupon",result="rejected"}')).toBe(1);
    expect(value("flashcart_http_requests_in_flight")).toBe(1); // this scrape itself
    expect(text).toContain("process_cpu_user_seconds_total");
    expect(text).toContain("nodejs_eventloop_lag_seconds");
    // Raw paths never become labels (ids would explode the series count).
    expect(text).not.toContain(`route="/api/users/${user.id}"`);
    await server.anonymous.get("/nope/123");
    await admin.post("/api/nope/5", {});
    // The first test asked for /nope once already.
    const after = await (await fetch(`${server.url}/metrics`)).text();
    expect(after).toContain(
      'flashcart_http_request_duration_seconds_count{method="GET",route="unmatched",status="404"} 2',
    );
    expect(after).toContain(
      'flashcart_http_request_duration_seconds_count{method="POST",route="unmatched",status="404"} 1',
    );
  });
});
