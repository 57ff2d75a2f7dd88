/** The Grafana dashboard and the Prometheus config must name metrics the service really exports. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { resolve } from "node:path";
import { startServer, type TestServer } from "./support/server.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startServer();
});
afterAll(() => server.stop());

test("every metric the dashboard queries is exported by /metrics", async () => {
  const dashboard = await Bun.file(resolve(import.meta.dir, "../load/monitoring/grafana-dashboard.json")).json();
  const exprs: string[] = dashboard.panels.flatMap((p: { targets: { expr: string }[] }) =>
    p.targets.map((t) => t.expr),
  );
  const queried = new Set(exprs.flatMap((e) => e.match(/\b(flashcart|nodejs|process)_[a-z0-9_]+/g) ?? []));
  const exported = await (await fetch(`${server.url}/metrics`)).text();
  const names = new Set([...exported.matchAll(/^# TYPE ([a-z0-9_]+) (\w+)$/gm)].map((m) => m[1]));
  const base = (name: string) => name.replace(/_(bucket|count|sum)$/, "");
  expect([...queried].filter((name) => !names.has(name) && !names.has(base(name)))).toEqual([]);
  expect(queried.size).toBeGreaterThanOrEqual(6);
});

test("the Prometheus config scrapes /metrics", async () => {
  const config = await Bun.file(resolve(import.meta.dir, "../load/monitoring/prometheus.yml")).text();
  expect(config).toContain("metrics_path: /metrics");
});
