import { Database } from "bun:sqlite";
import { describe, expect, test } from "bun:test";
import type postgres from "postgres";
import { MAX_BODY_BYTES } from "../../src/app.ts";
import { expectProblem } from "../support/api.ts";
import { describeOnEveryBackend } from "../support/every-backend.ts";
import { startServer } from "../support/server.ts";

describeOnEveryBackend(({ backend, server }) => {
  describe("operations", () => {
    test("GET /health and /ready answer without a token", async () => {
      expect(await server.anonymous.get("/health")).toMatchObject({ status: 200, body: { status: "ok" } });
      expect(await server.anonymous.get("/ready")).toMatchObject({ status: 200, body: { status: "ready" } });
    });

    test("/ready is 503 while the database lacks a migration this build expects", async () => {
      const s = await startServer({ backend });
      try {
        expect((await s.anonymous.get("/ready")).status).toBe(200);
        const forget =
          'DELETE FROM "__drizzle_migrations" WHERE created_at = (SELECT max(created_at) FROM "__drizzle_migrations")';
        if (s.dbPath !== "") {
          const writer = new Database(s.dbPath);
          writer.run(forget);
          writer.close();
        } else {
          await (s.db as postgres.Sql).unsafe(forget);
        }
        expect(await s.anonymous.get("/ready")).toMatchObject({ status: 503, body: { status: "unavailable" } });
        expect((await s.anonymous.get("/health")).status).toBe(200);
      } finally {
        await s.stop();
      }
    });

    test("secure headers are set on every response", async () => {
      const reply = await server.anonymous.get("/health");
      expect(reply.headers.get("x-content-type-options")).toBe("nosniff");
      expect(reply.headers.get("x-frame-options")).toBe("SAMEORIGIN");
    });

    test("API answers, errors included, carry the JSON API's security headers and not the documents' ones", async () => {
      const answers = [await server.anonymous.get("/api/products"), await server.anonymous.post("/api/nope", {})];
      for (const reply of answers) {
        expect(reply.headers.get("x-content-type-options")).toBe("nosniff");
        expect(reply.headers.get("x-frame-options")).toBe("DENY");
        expect(reply.headers.get("content-security-policy")).toBe("default-src 'none'; frame-ancestors 'none'");
        expect(reply.headers.get("strict-transport-security")).toBe("max-age=15552000; includeSubDomains");
        expect(reply.headers.get("cross-origin-resource-policy")).toBe("same-origin");
        expect(reply.headers.get("x-xss-protection")).toBeNull();
        expect(reply.headers.get("x-download-options")).toBeNull();
      }
    });

    test("an unknown route is a 404 NOT_FOUND problem", async () => {
      expectProblem(await server.anonymous.get("/nope"), 404, "NOT_FOUND");
      expectProblem(await server.admin.post("/api/nope", {}), 404, "NOT_FOUND");
    });
  });

  describe("API reference", () => {
    test("/openapi.json is OpenAPI 3.1 with every route, its errors and the bearer scheme", async () => {
      const { status, body } = await server.anonymous.get("/openapi.json");
      expect(status).toBe(200);
      expect(body.openapi).toBe("3.1.0");
      const routes = Object.entries(body.paths as Record<string, Record<string, unknown>>).flatMap(([path, methods]) =>
        Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`),
      );
      expect(routes.sort()).toEqual(
        [
          "GET /health",
          "GET /ready",
          "POST /api/users",
          "GET /api/users/{userId}",
          "GET /api/users/{userId}/points",
          "POST /api/users/{userId}/points/charge",
          "GET /api/users/{userId}/points/history",
          "POST /api/products",
          "GET /api/products",
          "GET /api/products/popular",
          "GET /api/products/{productId}",
          "POST /api/coupons",
          "GET /api/coupons/{couponId}",
          "POST /api/coupons/{userId}",
          "POST /api/users/{userId}/coupons",
          "GET /api/users/{userId}/coupons",
          "POST /api/orders",
          "GET /api/orders/{orderId}",
          "GET /api/users/{userId}/orders",
          "POST /api/orders/{orderId}/cancel",
          "GET /api/events",
        ].sort(),
      );
      expect(body.components.securitySchemes.bearerAuth).toMatchObject({ type: "http", scheme: "bearer" });
      const placeOrder = body.paths["/api/orders"].post;
      expect(placeOrder.security).toEqual([{ bearerAuth: [] }]);
      expect(Object.keys(placeOrder.responses).sort()).toEqual(
        ["201", "400", "401", "403", "404", "409", "413", "415", "422", "429"].sort(),
      );
      expect(placeOrder.parameters.map((p: { name: string }) => p.name)).toEqual(["idempotency-key"]);
      expect(body.paths["/api/products"].get.security).toBeUndefined();
    });

    test("/docs serves the interactive reference page for /openapi.json", async () => {
      const res = await fetch(`${server.url}/docs`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toContain("text/html");
      expect(await res.text()).toContain("/openapi.json");
    });
  });

  describe("request bodies", () => {
    test("malformed JSON is a 400 VALIDATION_FAILED", async () => {
      expectProblem(await server.admin.post("/api/users", '{"name": "a",'), 400, "VALIDATION_FAILED");
    });

    test("a body that is not JSON is a 415", async () => {
      expectProblem(
        await server.admin.post("/api/users", "name=a", { "content-type": "application/x-www-form-urlencoded" }),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
      );
    });

    test(`a body over ${MAX_BODY_BYTES} bytes is a 413 and creates nothing`, async () => {
      const reply = await server.admin.post("/api/users", { name: "x".repeat(MAX_BODY_BYTES) });
      expectProblem(reply, 413, "PAYLOAD_TOO_LARGE");
      expect(await server.get("SELECT count(*) AS n FROM users")).toEqual({ n: 0 });
    });

    test("validation errors list each failing field", async () => {
      const reply = await server.admin.post("/api/products", { name: "", price: 0, stock: 1.5, colour: "red" });
      expectProblem(reply, 400, "VALIDATION_FAILED");
      const paths = (reply.body.errors as { path: string }[]).map((e) => e.path).sort();
      expect(paths).toEqual(["body", "body.name", "body.price", "body.stock"]);
    });
  });
});
