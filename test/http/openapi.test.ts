/**
 * /openapi.json names, for each documented error status, the codes answered with it. The server picks
 * a code's status from the catalog in src/http/problem.ts, so the reference must agree with it.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { type ErrorCode, errorCodes } from "../../src/domain/errors.ts";
import { statusOf } from "../../src/http/problem.ts";
import { startServer, type TestServer } from "../support/server.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startServer();
});
afterAll(() => server.stop());

type Operation = { responses: Record<string, { description: string; content?: Record<string, unknown> }> };

const isErrorCode = (text: string): text is ErrorCode => (errorCodes as readonly string[]).includes(text);

test("every documented error status is the catalog status of each code it names", async () => {
  const { status, body } = await server.anonymous.get("/openapi.json");
  expect(status).toBe(200);
  const wrong: string[] = [];
  const withProblems = new Set<string>();
  for (const [path, operations] of Object.entries(body.paths as Record<string, Record<string, Operation>>)) {
    for (const [method, operation] of Object.entries(operations)) {
      for (const [documented, response] of Object.entries(operation.responses)) {
        // Only problem responses carry codes; /ready's 503 is a status document, not a problem.
        if (response.content?.["application/problem+json"] === undefined) continue;
        for (const code of response.description.split(", ")) {
          const where = `${method.toUpperCase()} ${path} ${documented} ${code}`;
          if (!isErrorCode(code)) wrong.push(`${where}: not an error code`);
          else if (String(statusOf(code)) !== documented) wrong.push(`${where}: the server answers ${statusOf(code)}`);
          withProblems.add(path);
        }
      }
    }
  }
  expect(wrong).toEqual([]);
  // Every /api route can refuse a request, so the loop above saw codes on each of them.
  expect([...withProblems].sort()).toEqual(
    Object.keys(body.paths)
      .filter((path) => path.startsWith("/api/"))
      .sort(),
  );
});

/** Routes on one order: another user's order is answered as missing (404), never 403. */
const ORDER_ROUTES = ["GET /api/orders/{orderId}", "POST /api/orders/{orderId}/cancel"];

test("every route that needs a token documents 401 UNAUTHENTICATED and 403 FORBIDDEN (404 for an order)", async () => {
  const { body } = await server.anonymous.get("/openapi.json");
  const missing: string[] = [];
  for (const [path, operations] of Object.entries(body.paths as Record<string, Record<string, Operation>>)) {
    for (const [method, operation] of Object.entries(operations) as [string, Operation & { security?: unknown }][]) {
      if (operation.security === undefined) continue;
      const route = `${method.toUpperCase()} ${path}`;
      const { 401: unauthenticated, 403: forbidden, 404: notFound } = operation.responses;
      const refusal = ORDER_ROUTES.includes(route)
        ? forbidden === undefined && notFound?.description === "ORDER_NOT_FOUND"
        : forbidden?.description === "FORBIDDEN";
      if (unauthenticated?.description !== "UNAUTHENTICATED" || !refusal) missing.push(route);
    }
  }
  expect(missing).toEqual([]);
});
