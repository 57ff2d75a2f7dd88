/**
 * The relay in a real server's process, against a real webhook receiver (which checks each signature
 * with `standardwebhooks`) and the NATS JetStream server: on SQLite and on PostgreSQL.
 */
import { Database } from "bun:sqlite";
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DiscardPolicy, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import type postgres from "postgres";
import { requestsWaiting, type ThreadProbe } from "../src/events/busy.ts";
import { NatsSink } from "../src/events/nats.ts";
import { backoff, Relay, type RelayObserver, type Sink } from "../src/events/relay.ts";
import { WebhookSink } from "../src/events/webhook.ts";
import { silentLogger } from "../src/logger.ts";
import { openPg } from "../src/store/pg/database.ts";
import { PgStore } from "../src/store/pg/store.ts";
import type { Store } from "../src/store/port.ts";
import { openSqlite } from "../src/store/sqlite/database.ts";
import { SqliteStore } from "../src/store/sqlite/store.ts";
import { backends, startServer, TEST_DATABASE_URL, type TestServer } from "./support/server.ts";
import {
  eventually,
  privateStream,
  type Receiver,
  TEST_NATS_URL,
  webhookReceiver,
  webhookSecret,
} from "./support/sinks.ts";

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/**
 * A relay over `store`'s outbox, quick to retry (the production pauses are longer); `busy`: requests
 * waiting; `observer`: what /metrics would hear.
 */
function relayOf(
  store: Store,
  sinks: ConstructorParameters<typeof Relay>[1],
  { busy, observer = null }: { busy?: () => boolean; observer?: RelayObserver | null } = {},
): Relay {
  const relay = new Relay(store.outbox, sinks, {
    logger: silentLogger,
    observer,
    now: Date.now,
    pollMs: 10,
    batch: 16,
    backoffMs: 10,
    maxBackoffMs: 100,
    ...(busy === undefined ? {} : { busy }),
  });
  relay.start();
  cleanups.push(() => relay.stop());
  return relay;
}

async function started(backend: (typeof backends)[number]): Promise<TestServer> {
  const server = await startServer({ backend });
  cleanups.push(() => server.stop());
  return server;
}

function receiver(secret: string): Receiver {
  const made = webhookReceiver(secret);
  cleanups.push(() => made.stop());
  return made;
}

/** A few writes of every kind: 2 users charged, a drop of 1 claimed (sold out), an order, its cancel. */
async function someWrites(server: TestServer): Promise<void> {
  const { admin } = server;
  const a = await admin.user("a", 10_000);
  const b = await admin.user("b", 10_000);
  const product = await admin.product(100, 10);
  const drop = await admin.coupon({ totalQuantity: 1, discountValue: 10 });
  await admin.issue(a.id, drop.id);
  await admin.issue(b.id, drop.id);
  const order = await admin.order(b.id, [{ productId: product.id, quantity: 3 }]);
  await admin.post(`/api/orders/${order.body.id}/cancel`);
}

/** Every event through the feed, as JSON text per event (the relay sends the same text). */
async function feedOf(server: TestServer) {
  const page = await server.admin.get("/api/events?limit=1000");
  return page.body.items as { id: number; type: string }[];
}

/** A second store on the same database, as another process would open it. */
async function sameDatabase(server: TestServer): Promise<Store> {
  let store: Store;
  if (server.backend === "sqlite") {
    store = new SqliteStore(openSqlite({ path: server.dbPath, synchronous: "NORMAL", busyTimeoutMs: 5000 }), {
      writeLockWaitMs: 5000,
      events: true,
    });
  } else {
    const sql = server.db as postgres.Sql;
    const [row] = await sql`SELECT current_schema() AS schema`;
    const db = await openPg({ url: TEST_DATABASE_URL, schema: row?.schema, poolMax: 4, statementTimeoutMs: 10_000 });
    store = new PgStore(db, { couponStrategy: "atomic", events: true });
  }
  cleanups.push(() => store.close());
  return store;
}

/** Moves a sink's cursor back (as if its acknowledgements had not been recorded before a crash). */
async function rewind(server: TestServer, sink: string): Promise<void> {
  if (server.backend === "sqlite") {
    const db = new Database(server.dbPath);
    db.run("UPDATE event_sinks SET delivered_id = 0 WHERE sink = ?", [sink]);
    db.close();
  } else {
    await (server.db as postgres.Sql)`UPDATE event_sinks SET delivered_id = 0 WHERE sink = ${sink}`;
  }
}

describe.each(backends.filter((backend) => backend === "sqlite" || backend === "pg-atomic"))(
  "relay on %s",
  (backend) => {
    test("pushes every event to the webhook, signed, in id order, and to JetStream once each, with its id", async () => {
      const server = await started(backend);
      const secret = webhookSecret();
      const hooks = receiver(secret);
      const stream = privateStream();
      cleanups.push(() => stream.remove());
      await someWrites(server);
      relayOf(server.store, [
        new WebhookSink({ url: hooks.url, secret, timeoutMs: 5000 }),
        new NatsSink({ url: TEST_NATS_URL, ...stream }),
      ]);
      const events = await feedOf(server);
      const last = (events.at(-1) as { id: number }).id;
      await eventually("both sinks have every event", async () => {
        const { outbox } = server.store;
        return (await outbox.deliveredTo("webhook")) === last && (await outbox.deliveredTo("nats")) === last;
      });

      expect(events.map((event) => event.type)).toEqual([
        "points.charged",
        "points.charged",
        "coupon.claimed",
        "coupon.sold_out",
        "order.paid",
        "order.cancelled",
      ]);
      expect(hooks.received.every((r) => r.valid && r.status === 204)).toBe(true);
      expect(hooks.received.map((r) => r.webhookId)).toEqual(events.map((event) => String(event.id)));
      expect(hooks.accepted()).toEqual(events as never);
      const messages = await stream.messages();
      expect(messages.map((m) => [m.msgId, m.subject, JSON.parse(m.body)])).toEqual(
        events.map((event) => [String(event.id), `${stream.subjectPrefix}.${event.type}`, event]),
      );
      expect(await server.store.outbox.oldestUndelivered("webhook")).toBeNull();
    });

    test("a receiver in trouble gets each event again, same webhook-id, until it answers 2xx; order holds; JetStream keeps one of each", async () => {
      const server = await started(backend);
      const secret = webhookSecret();
      const hooks = receiver(secret);
      const stream = privateStream();
      cleanups.push(() => stream.remove());
      hooks.failWith = 503;
      await someWrites(server);
      const relay = relayOf(server.store, [
        new WebhookSink({ url: hooks.url, secret, timeoutMs: 5000 }),
        new NatsSink({ url: TEST_NATS_URL, ...stream }),
      ]);
      const events = await feedOf(server);
      const last = (events.at(-1) as { id: number }).id;
      await eventually("three refused attempts", () => hooks.received.length >= 3);
      // Refused: the first event is tried again and again, nothing after it is sent meanwhile.
      expect(new Set(hooks.received.map((r) => r.webhookId))).toEqual(new Set([String(events[0]?.id)]));
      expect(await server.store.outbox.deliveredTo("webhook")).toBe(0);
      hooks.failWith = null;
      await eventually(
        "the webhook has every event",
        async () => (await server.store.outbox.deliveredTo("webhook")) === last,
      );
      expect(hooks.accepted().map((event) => event.id)).toEqual(events.map((event) => event.id));
      expect(hooks.received.every((r) => r.valid)).toBe(true);

      // Acknowledgements lost (the cursors moved back, as after a crash before they were recorded):
      // everything is sent again; the receiver sees repeats with the same ids, the stream none.
      await eventually("nats has every event", async () => (await server.store.outbox.deliveredTo("nats")) === last);
      await relay.stop();
      await rewind(server, "webhook");
      await rewind(server, "nats");
      relayOf(server.store, [
        new WebhookSink({ url: hooks.url, secret, timeoutMs: 5000 }),
        new NatsSink({ url: TEST_NATS_URL, ...stream }),
      ]);
      await eventually("sent again", async () => {
        const { outbox } = server.store;
        return hooks.accepted().length === 2 * events.length && (await outbox.deliveredTo("nats")) === last;
      });
      expect(hooks.accepted().map((event) => event.id)).toEqual([...events, ...events].map((event) => event.id));
      expect((await stream.messages()).map((m) => Number(m.msgId))).toEqual(events.map((event) => event.id));
    });

    test("one relay delivers at a time across processes; another takes over once the holder lets go", async () => {
      const server = await started(backend);
      const secret = webhookSecret();
      const first = receiver(secret);
      const second = receiver(secret);
      const other = await sameDatabase(server);
      const holder = relayOf(server.store, [new WebhookSink({ url: first.url, secret, timeoutMs: 5000 })]);
      await eventually("the first relay holds the lock", () => server.store.outbox.relayLock.held());
      relayOf(other, [new WebhookSink({ url: second.url, secret, timeoutMs: 5000 })]);
      await someWrites(server);
      const events = await feedOf(server);
      await eventually("delivered", async () => (await other.outbox.deliveredTo("webhook")) === events.at(-1)?.id);
      expect(first.accepted().map((event) => event.id)).toEqual(events.map((event) => event.id));
      expect(second.received).toEqual([]);

      await holder.stop();
      await server.admin.charge(1, 5);
      const more = await feedOf(server);
      await eventually("taken over", async () => (await other.outbox.deliveredTo("webhook")) === more.at(-1)?.id);
      expect(second.accepted().map((event) => event.id)).toEqual([more.at(-1)?.id as number]);
      expect(first.accepted().length).toBe(events.length);
    });
  },
);

test("back-off doubles from its base up to its bound, jittered between half and all of it", () => {
  expect([1, 2, 3, 4, 10].map((n) => backoff(n, 250, 30_000, () => 1))).toEqual([250, 500, 1000, 2000, 30_000]);
  expect([1, 2, 10, 1000].map((n) => backoff(n, 250, 30_000, () => 0))).toEqual([125, 250, 15_000, 15_000]);
});

describe.each(backends.filter((backend) => backend === "sqlite"))("JetStream down for a while (%s)", (backend) => {
  test("the relay retries until NATS is back, then the stream holds every event once, in id order", async () => {
    const binary = Bun.which("nats-server") ?? "/usr/sbin/nats-server";
    const storeDir = mkdtempSync(join(tmpdir(), "flashcart-nats-"));
    cleanups.push(() => rmSync(storeDir, { recursive: true, force: true }));
    const port = await freePort();
    const start = async () => {
      const proc = Bun.spawn([binary, "-a", "127.0.0.1", "-p", String(port), "-js", "-sd", storeDir], {
        stdout: "ignore",
        stderr: "ignore",
      });
      cleanups.push(() => proc.kill("SIGKILL"));
      await eventually("nats-server listens", () => canConnect(port));
      return proc;
    };
    let nats = await start();
    const server = await started(backend);
    const stream = privateStream();
    const url = `nats://127.0.0.1:${port}`;
    relayOf(server.store, [new NatsSink({ url, ...stream })]);
    await someWrites(server);
    const first = await feedOf(server);
    await eventually("published", async () => (await server.store.outbox.deliveredTo("nats")) === first.at(-1)?.id);

    nats.kill("SIGKILL");
    await nats.exited;
    await someWrites(server);
    const all = await feedOf(server);
    await Bun.sleep(300); // the relay fails and backs off meanwhile
    expect(await server.store.outbox.deliveredTo("nats")).toBe(first.at(-1)?.id as number);
    nats = await start();
    await eventually("caught up", async () => (await server.store.outbox.deliveredTo("nats")) === all.at(-1)?.id);
    const messages = await streamMessagesAt(url, stream.stream);
    expect(messages).toEqual(all.map((event) => String(event.id)));
  });
});

async function freePort(): Promise<number> {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = probe.port;
  probe.stop(true);
  return port;
}

async function canConnect(port: number): Promise<boolean> {
  try {
    const socket = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
    socket.end();
    return true;
  } catch {
    return false;
  }
}

/** The message ids in a stream of a NATS server other than the shared one, in stream order. */
async function streamMessagesAt(url: string, name: string): Promise<(string | undefined)[]> {
  const connection = await connect({ servers: url });
  try {
    const manager = await jetstreamManager(connection);
    const info = await manager.streams.info(name);
    const ids: (string | undefined)[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      ids.push((await manager.streams.getMessage(name, { seq }))?.header.get("Nats-Msg-Id"));
    }
    return ids;
  } finally {
    await connection.close();
  }
}

/** Events as the outbox hands them to a sink, with these ids. */
const eventsOf = (ids: number[]) =>
  ids.map((id) => ({ id, type: "points.charged" as const, occurredAt: Date.UTC(2026, 0, 1), data: `{"n":${id}}` }));
const neverAborted = new AbortController().signal;

/** `sink.deliver(events)`, with the relay stopping 100 ms in: what it answered, how long it took, the signal. */
async function stoppedMidway(sink: Sink, ids: number[]) {
  const stopping = new AbortController();
  setTimeout(() => stopping.abort(new Error("the relay is stopping")), 100);
  const started = performance.now();
  const delivery = await sink.deliver(eventsOf(ids), stopping.signal);
  return { delivery, tookMs: performance.now() - started, signal: stopping.signal };
}

describe("the webhook sink", () => {
  /** A receiver that reads each request and never answers it; `received` counts them. */
  function silentReceiver() {
    const state = { received: 0 };
    const server = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      async fetch(request) {
        await request.arrayBuffer();
        state.received++;
        return new Promise<Response>(() => {});
      },
    });
    cleanups.push(() => server.stop(true));
    return { url: `${server.url.href}hooks`, state };
  }

  test("a receiver that never answers: the attempt gives up at the timeout, nothing delivered, the batch stops there", async () => {
    const hooks = silentReceiver();
    const sink = new WebhookSink({ url: hooks.url, secret: webhookSecret(), timeoutMs: 300 });
    const started = performance.now();
    const delivery = await sink.deliver(eventsOf([1, 2]), neverAborted);
    const took = performance.now() - started;
    expect(delivery.delivered).toBe(0);
    expect(String(delivery.error)).toContain("no answer within 300 ms");
    expect(took).toBeGreaterThanOrEqual(290);
    expect(took).toBeLessThan(3_000);
    expect(hooks.state.received).toBe(1);
  });

  test("stopping the relay abandons an attempt in flight at once, and a stopped relay sends nothing", async () => {
    const hooks = silentReceiver();
    const sink = new WebhookSink({ url: hooks.url, secret: webhookSecret(), timeoutMs: 30_000 });
    const { delivery, tookMs, signal } = await stoppedMidway(sink, [1, 2]);
    // Far within the 30 s timeout: the stop did it.
    expect(tookMs).toBeLessThan(2_000);
    expect(delivery.delivered).toBe(0);
    expect(String(delivery.error)).toContain("stopping");
    expect(await sink.deliver(eventsOf([3]), signal)).toEqual({ delivered: 0, error: signal.reason });
    // The first reached the receiver (or was on its way when stopped); the second was never sent.
    expect(hooks.state.received).toBeLessThanOrEqual(1);
  });
});

describe("the NATS sink", () => {
  /** A sink on the test server's NATS, to a stream of its own, which has delivered event 1. */
  async function sinkHoldingEventOne() {
    const stream = privateStream();
    cleanups.push(() => stream.remove());
    const sink = new NatsSink({ url: TEST_NATS_URL, ...stream });
    cleanups.push(() => sink.close());
    expect(await sink.deliver(eventsOf([1]), neverAborted)).toEqual({ delivered: 1, error: null });
    return { stream, sink };
  }

  test("counts only what JetStream acknowledged: a stream that refuses the third stops the batch there, in order", async () => {
    const stream = privateStream();
    cleanups.push(() => stream.remove());
    const connection = await connect({ servers: TEST_NATS_URL });
    try {
      const manager = await jetstreamManager(connection);
      await manager.streams.add({
        name: stream.stream,
        subjects: [`${stream.subjectPrefix}.>`],
        max_msgs: 2,
        discard: DiscardPolicy.New,
      });
    } finally {
      await connection.close();
    }
    const sink = new NatsSink({ url: TEST_NATS_URL, ...stream });
    cleanups.push(() => sink.close());

    const first = await sink.deliver(eventsOf([1, 2, 3, 4]), neverAborted);
    expect(first.delivered).toBe(2);
    expect(String(first.error)).toContain("JetStream refused the message");
    // The next attempt starts from the first unacknowledged event, on a fresh connection; repeats of
    // acknowledged ones are dropped by their message id.
    const again = await sink.deliver(eventsOf([1, 2]), neverAborted);
    expect(again).toEqual({ delivered: 2, error: null });
    expect((await stream.messages()).map((m) => [m.msgId, JSON.parse(m.body).id])).toEqual([
      ["1", 1],
      ["2", 2],
    ]);
  });

  test("a subject no stream holds is not delivered: NATS answers that nothing took it", async () => {
    const { stream } = await sinkHoldingEventOne();
    // Another deployment's sink on the same server, whose subjects no stream holds.
    const stray = new NatsSink({
      url: TEST_NATS_URL,
      stream: stream.stream,
      subjectPrefix: `${stream.subjectPrefix}-stray`,
    });
    cleanups.push(() => stray.close());
    const refused = await stray.deliver(eventsOf([2, 3]), neverAborted);
    expect(refused.delivered).toBe(0);
    expect(String(refused.error)).toContain("503");
  });

  test("a relay already stopping publishes nothing", async () => {
    const { stream, sink } = await sinkHoldingEventOne();
    const stopped = new AbortController();
    stopped.abort(new Error("the relay is stopping"));
    expect(await sink.deliver(eventsOf([2, 3]), stopped.signal)).toEqual({
      delivered: 0,
      error: stopped.signal.reason,
    });
    expect((await stream.messages()).map((m) => m.msgId)).toEqual(["1"]);
  });

  test("stopping the relay gives up on acknowledgements still awaited, at once", async () => {
    const binary = Bun.which("nats-server") ?? "/usr/sbin/nats-server";
    const storeDir = mkdtempSync(join(tmpdir(), "flashcart-nats-"));
    cleanups.push(() => rmSync(storeDir, { recursive: true, force: true }));
    const port = await freePort();
    const nats = Bun.spawn([binary, "-a", "127.0.0.1", "-p", String(port), "-js", "-sd", storeDir], {
      stdout: "ignore",
      stderr: "ignore",
    });
    cleanups.push(() => nats.kill("SIGKILL"));
    await eventually("nats-server listens", () => canConnect(port));
    const stream = privateStream();
    const sink = new NatsSink({ url: `nats://127.0.0.1:${port}`, ...stream });
    cleanups.push(() => sink.close());
    expect(await sink.deliver(eventsOf([1]), neverAborted)).toEqual({ delivered: 1, error: null });

    // The server stops answering (stopped, not gone: the connection stays open, no acknowledgement comes).
    nats.kill("SIGSTOP");
    cleanups.push(() => nats.kill("SIGCONT"));
    // kill() returns before the process has stopped: its threads may still answer for a moment.
    await eventually(
      "nats-server stopped",
      () => readFileSync(`/proc/${nats.pid}/stat`, "utf8").split(") ")[1]?.[0] === "T",
    );
    const { delivery, tookMs } = await stoppedMidway(sink, [2, 3]);
    // Well within the acknowledgement timeout (5 s): the stop did it.
    expect(tookMs).toBeLessThan(2500);
    expect(delivery.delivered).toBe(0);
    expect(String(delivery.error)).toContain("stopping");
  });
});

describe("whether requests are waiting (the relay's busy)", () => {
  /** A probe whose clock, CPU and counters the test moves. */
  function fakeProbe() {
    const state = { inFlight: 0, received: 0, cpuMs: 0, now: 0 };
    const probe: ThreadProbe = {
      inFlight: () => state.inFlight,
      received: () => state.received,
      cpuMs: () => state.cpuMs,
      now: () => state.now,
    };
    /** `ms` pass, with `cpuMs` of CPU used and `requests` received meanwhile. */
    const pass = (ms: number, cpuMs: number, requests: number) => {
      state.now += ms;
      state.cpuMs += cpuMs;
      state.received += requests;
    };
    return { state, probe, pass };
  }

  test("a few orders in flight waiting for their commits, the CPU with room: not busy", () => {
    const { state, probe, pass } = fakeProbe();
    const busy = requestsWaiting(probe);
    pass(100, 49, 200); // 2,000 orders a second, each waiting for its batch's fsync with the thread free
    state.inFlight = 4;
    expect(busy()).toBe(false);
  });

  test("a queue of requests in flight: busy, whatever the CPU (durable orders block in fsync)", () => {
    const { state, probe, pass } = fakeProbe();
    const busy = requestsWaiting(probe, { queued: 32 });
    pass(100, 76, 1000);
    state.inFlight = 90;
    expect(busy()).toBe(true);
  });

  test("the last window answered requests with the CPU saturated: busy, even with none in flight when asked", () => {
    const { probe, pass } = fakeProbe();
    const busy = requestsWaiting(probe, { windowMs: 100, saturatedShare: 0.8 });
    pass(100, 95, 2000); // a stampede of claims answered from memory, each within its own turn
    expect(busy()).toBe(true);
    pass(50, 48, 1000); // the decision holds until the next window has passed
    expect(busy()).toBe(true);
  });

  test("the CPU saturated by the relay alone, no request received: not busy", () => {
    const { probe, pass } = fakeProbe();
    const busy = requestsWaiting(probe);
    pass(100, 99, 0);
    expect(busy()).toBe(false);
  });

  test("a stampede that ends: busy for its window, then not", () => {
    const { probe, pass } = fakeProbe();
    const busy = requestsWaiting(probe);
    pass(100, 97, 1500);
    expect(busy()).toBe(true);
    pass(100, 20, 0);
    expect(busy()).toBe(false);
  });
});

/** A sink that says each event costs it `costUs`, calls `each` for every event it is handed, and acknowledges them all. */
function acceptingSink(costUs: number, each: () => void): Sink {
  return {
    name: "webhook",
    costUs,
    async deliver(batch) {
      for (const _ of batch) each();
      return { delivered: batch.length, error: null };
    },
    async close() {},
  };
}

test("while requests wait the relay keeps to its share, and goes on at full speed as soon as they stop", async () => {
  const server = await started("sqlite");
  await someWrites(server);
  const events = await feedOf(server);
  const deliveredAt: number[] = [];
  // So dear that while busy it may send one event every 10 s (1 % of the thread at 100 ms an event).
  const dear = acceptingSink(100_000, () => deliveredAt.push(performance.now()));
  let waiting = true;
  relayOf(server.store, [dear], { busy: () => waiting });
  await eventually("the first event", () => deliveredAt.length >= 1);
  await Bun.sleep(300);
  expect(deliveredAt.length).toBe(1); // paced: the next one is 10 s away while requests wait
  const stopped = performance.now();
  waiting = false;
  await eventually("the rest", () => deliveredAt.length === events.length, 5_000);
  // Not after the 10 s its pace had set: within a few of its 100 ms looks.
  expect((deliveredAt.at(-1) as number) - stopped).toBeLessThan(2_000);
});

test("the pace while requests wait follows what a sink costs here: one that claims 1 µs an event but burns 2 ms is held to its share", async () => {
  const server = await started("sqlite");
  const { admin } = server;
  const user = await admin.user("a", 0);
  const charges = (n: number) =>
    Promise.all(Array.from({ length: n }, () => admin.post(`/api/users/${user.id}/points/charge`, { amount: 1 })));
  await charges(80);
  let delivered = 0;
  const burning = acceptingSink(1, () => {
    const until = performance.now() + 2;
    while (performance.now() < until) {}
    delivered++;
  });
  let waiting = false;
  const costs: number[] = [];
  const observer: RelayObserver = { delivered() {}, failed() {}, costed: (_sink, costUs) => costs.push(costUs) };
  relayOf(server.store, [burning], { busy: () => waiting, observer });
  // Requests not waiting: full speed, and the cost measured (at least 64 events).
  await eventually("the first writes", () => delivered >= 80);
  // What /metrics shows: the 1 µs it claims to start with, then what it was measured to cost.
  expect(costs[0]).toBe(1);
  expect(costs.at(-1)).toBeGreaterThanOrEqual(2_000);
  waiting = true;
  const before = delivered;
  const busySince = performance.now();
  await charges(100);
  await Bun.sleep(1_000);
  const seconds = (performance.now() - busySince) / 1000;
  // 2 % of the thread at ≥ 2 ms an event: ≈ 10 a second, in batches of 5 (twice that allowed here).
  // At the 1 µs it claims, all 100 would go as soon as they are written.
  expect(delivered - before).toBeGreaterThan(0);
  expect(delivered - before).toBeLessThanOrEqual(5 + 20 * seconds);
  expect(delivered - before).toBeLessThan(100);
  waiting = false;
  await eventually("the rest", () => delivered >= 180, 5_000);
});
