/**
 * Nothing lost, duplicates identifiable: the real server process is killed with SIGKILL in the middle
 * of a stampede of claims and orders while its relay pushes to a webhook receiver (down at the time)
 * and to NATS JetStream, then started again on the same database. Afterwards every committed effect
 * has exactly one event, every event reached the receiver once it came back (repeats allowed, with
 * the same webhook-id and a valid signature) and the stream exactly once, in id order.
 */
import { Database } from "bun:sqlite";
import { afterEach, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import postgres from "postgres";
import { brokenEventInvariants, brokenInvariants } from "../load/invariants.ts";
import { type ListeningProcess, spawnListening } from "../load/process.ts";
import { type RowSource, rowReader } from "../load/rows.ts";
import { client, type Reply } from "./support/api.ts";
import { backends, TEST_DATABASE_URL, tokenFor } from "./support/server.ts";
import { eventually, privateStream, TEST_NATS_URL, webhookReceiver, webhookSecret } from "./support/sinks.ts";

const serve = [process.execPath, resolve(import.meta.dir, "../src/main.ts"), "serve"];
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function launch(env: Record<string, string>): Promise<ListeningProcess> {
  const running = await spawnListening(serve, {
    cwd: resolve(import.meta.dir, ".."),
    env: { ...process.env, PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "info", LOG_SAMPLE: "0", ...env },
  });
  cleanups.push(() => running.proc.kill("SIGKILL"));
  return running;
}

/** A database for the server process and an auditor's connection to it. */
function database(backend: string): { env: Record<string, string>; source: RowSource; drop(): Promise<void> } {
  if (backend === "sqlite") {
    const dir = mkdtempSync(join(tmpdir(), "flashcart-crash-"));
    const path = join(dir, "flashcart.db");
    let reader: Database | null = null;
    return {
      env: { DATABASE_URL: `sqlite:${path}` },
      get source() {
        reader ??= new Database(path, { readonly: true });
        return reader;
      },
      async drop() {
        reader?.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const schema = `flashcart_crash_${process.pid}_${randomBytes(4).toString("hex")}`;
  const separator = TEST_DATABASE_URL.includes("?") ? "&" : "?";
  const auditor = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {}, connection: { search_path: schema } });
  return {
    env: { DATABASE_URL: `${TEST_DATABASE_URL}${separator}schema=${schema}`, COUPON_STRATEGY: backend.slice(3) },
    source: auditor,
    async drop() {
      await auditor.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await auditor.end({ timeout: 5 });
    },
  };
}

const crashBackends = backends.filter((b) => b === "sqlite" || b === "pg-atomic" || b === "pg-sharded");

describe.each(crashBackends)("kill -9 in a stampede, on %s", (backend) => {
  test("every committed effect has exactly one event; the webhook and JetStream get them all once back", async () => {
    const db = database(backend);
    cleanups.push(() => db.drop());
    const secret = randomBytes(24).toString("hex");
    const hookSecret = webhookSecret();
    const hooks = webhookReceiver(hookSecret);
    cleanups.push(() => hooks.stop());
    const stream = privateStream();
    cleanups.push(() => stream.remove());
    const env = {
      ...db.env,
      JWT_SECRET: secret,
      RATE_LIMIT_COUPON_CLAIMS: "0",
      RATE_LIMIT_ORDERS: "0",
      WEBHOOK_URL: hooks.url,
      WEBHOOK_SECRET: hookSecret,
      NATS_URL: TEST_NATS_URL,
      NATS_STREAM: stream.stream,
      NATS_SUBJECT_PREFIX: stream.subjectPrefix,
    };
    const key = new TextEncoder().encode(secret);

    let server = await launch(env);
    const admin = client(server.url, await tokenFor(key, "admin"));
    const drop = await admin.coupon({ totalQuantity: 40, discountValue: 100 });
    const product = await admin.product(100, 1_000_000);
    const users = await Promise.all(Array.from({ length: 200 }, (_, i) => admin.user(`u${i}`, 10_000)));

    // The receiver goes down; the stampede starts; once a third of it is answered, SIGKILL.
    hooks.down();
    const replies: (Reply | null)[] = [];
    let answered = 0;
    const settle = (request: Promise<Reply>) =>
      request.then(
        (reply) => {
          answered++;
          return reply;
        },
        () => null, // the process died with it in flight: committed or not, the database says
      );
    const as = client(server.url, admin.token);
    const stampede = [
      ...users.map((user) => settle(as.issue(user.id, drop.id))),
      ...users.flatMap((user) =>
        [1, 2].map((quantity) => settle(as.order(user.id, [{ productId: product.id, quantity }]))),
      ),
    ];
    await eventually("a third of the stampede answered", () => answered >= stampede.length / 3);
    server.proc.kill("SIGKILL");
    expect(await server.proc.exited).not.toBe(0);
    replies.push(...(await Promise.all(stampede)));
    const committed = replies.filter((reply) => reply !== null && reply.status === 201) as Reply[];
    expect(committed.length).toBeGreaterThan(0);

    // Restarted on the same database; the receiver comes back only after a while.
    server = await launch(env);
    await Bun.sleep(500);
    hooks.up();

    const source = db.source;
    const read = rowReader(source);
    const lastId = async () => Number((await read("SELECT max(id) AS id FROM events"))[0]?.id ?? 0);
    const cursor = async (sink: string) =>
      Number((await read("SELECT delivered_id AS id FROM event_sinks WHERE sink = ?", sink))[0]?.id ?? -1);
    // On PostgreSQL a statement the killed process had sent may still commit after it died (the server
    // notices a lost client only when it answers): the last id is read again until the sinks reach it.
    // Reading the feed first sequences what has committed.
    const after = client(server.url, admin.token);
    let last = 0;
    await eventually("both sinks caught up", async () => {
      expect((await after.get("/api/events?limit=1")).status).toBe(200);
      last = await lastId();
      return (await cursor("webhook")) === last && (await cursor("nats")) === last;
    });

    // Every committed effect has exactly one event, and every 2xx answered before the kill is one of them.
    expect(await brokenEventInvariants(source)).toEqual([]);
    expect(await brokenInvariants(source)).toEqual([]);
    const events = await read("SELECT id, type, data FROM events ORDER BY id");
    expect(events.length).toBe(last);
    const told = new Set(events.map((event) => `${event.type} ${JSON.parse(event.data as string).id}`));
    for (const reply of committed) {
      const type = "totalAmount" in reply.body ? "order.paid" : "coupon.claimed";
      expect(told.has(`${type} ${reply.body.id}`)).toBe(true);
    }

    // The webhook: every event, each signature valid; a repeat carries the same id and the same body.
    expect(hooks.received.every((r) => r.valid)).toBe(true);
    const bodies = new Map<string, string>();
    for (const r of hooks.received.filter((r) => r.status < 300)) {
      expect(bodies.get(r.webhookId) ?? r.body).toBe(r.body);
      bodies.set(r.webhookId, r.body);
    }
    const ids = events.map((event) => Number(event.id));
    expect([...bodies.keys()].map(Number).sort((a, b) => a - b)).toEqual(ids);
    // JetStream: each event exactly once, in id order.
    expect((await stream.messages()).map((m) => Number(m.msgId))).toEqual(ids);

    // /metrics of the new process: nothing left undelivered, its deliveries counted.
    const metrics = (await after.get("/metrics")).body as string;
    expect(metrics).toContain('flashcart_events_oldest_undelivered_age_seconds{sink="webhook"} 0');
    expect(metrics).toContain('flashcart_events_oldest_undelivered_age_seconds{sink="nats"} 0');
    expect(metrics).toMatch(/flashcart_events_delivered_total\{sink="webhook"\} [1-9]/);
    // Each sink's cost per event, in seconds of CPU: measured, or its starting estimate.
    expect(metrics).toMatch(/flashcart_events_delivery_cost_seconds\{sink="webhook"\} [0-9.e-]+\n/);
    expect(metrics).toMatch(/flashcart_events_delivery_cost_seconds\{sink="nats"\} [0-9.e-]+\n/);
    expect(metrics).toMatch(/flashcart_events_written_total\{type="order.paid"\} \d/);

    server.proc.kill("SIGTERM");
    expect(await server.proc.exited).toBe(0);
  });
});
