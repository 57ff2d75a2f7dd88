/**
 * PostgreSQL's event sequencer (drizzle/pg/0010) against what can go wrong: writers committing out of
 * seq order, transactions held open, rollbacks, two sequencers at once; and 0010 migrating an outbox
 * that already holds events, some of them without an id yet.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import postgres from "postgres";
import { eventTypes } from "../src/domain/events.ts";
import { pgMigrations } from "../src/store/migrations.generated.ts";
import { openPg } from "../src/store/pg/database.ts";
import { PgOutbox } from "../src/store/pg/outbox.ts";
import { TEST_DATABASE_URL } from "./support/server.ts";

if (TEST_DATABASE_URL === "") {
  console.log("pg-sequencer.test.ts not run: set TEST_DATABASE_URL=postgres://… to run it.");
} else {
  describe("PostgreSQL's event sequencer", () => {
    const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
    const schemas: string[] = [];
    const clients: postgres.Sql[] = [];
    afterAll(async () => {
      await Promise.all(clients.map((client) => client.end({ timeout: 5 })));
      for (const schema of schemas) await admin.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.end({ timeout: 5 });
    });

    /** A fresh schema, migrated unless told otherwise, and a way to open connections to it. */
    async function freshSchema(migrate = true) {
      const schema = `flashcart_sequencer_${process.pid}_${randomBytes(4).toString("hex")}`;
      schemas.push(schema);
      if (migrate)
        await (await openPg({ url: TEST_DATABASE_URL, schema, poolMax: 1, statementTimeoutMs: 10_000 })).$client.end();
      const connect = (max = 1) => {
        const client = postgres(TEST_DATABASE_URL, { max, onnotice: () => {}, connection: { search_path: schema } });
        clients.push(client);
        return client;
      };
      return { schema, connect };
    }

    const sequenced = async (sql: postgres.Sql) => {
      let given = 0;
      for (;;) {
        const [row] = await sql<{ given: number }[]>`SELECT sequence_events(1000) AS given`;
        given += row?.given ?? 0;
        if ((row?.given ?? 0) === 0) return given;
      }
    };

    test("six writers (some rolling back, some holding their transaction) and two sequencers: each committed event gets one id, ids dense and in commit order, never readable before a smaller one", async () => {
      const { connect } = await freshSchema();
      const deadline = performance.now() + 3000;
      class RolledBack extends Error {}
      /** Per event: when its insert was sent, and when its commit was answered (absent: rolled back). */
      const written = new Map<string, { sent: number; committed?: number }>();

      const writer = async (w: number) => {
        const sql = connect();
        for (let i = 0; performance.now() < deadline; i++) {
          const tag = `${w}.${i}`;
          const sent = performance.now();
          written.set(tag, { sent });
          try {
            await sql.begin(async (tx) => {
              // The event is the transaction's first write: seq's default must give it its id first.
              await tx`INSERT INTO event_records (type, occurred_at, data) VALUES ('points.charged', 0, ${JSON.stringify({ tag })})`;
              if (Math.random() < 0.2) await Bun.sleep(Math.random() * 50);
              if (Math.random() < 0.15) throw new RolledBack();
            });
            written.set(tag, { sent, committed: performance.now() });
          } catch (error) {
            if (!(error instanceof RolledBack)) throw error;
          }
        }
      };
      const sequencer = async () => {
        const sql = connect();
        while (performance.now() < deadline) {
          await sql`SELECT sequence_events(${1 + Math.floor(Math.random() * 20)}::int)`;
          if (Math.random() < 0.3) await Bun.sleep(Math.random() * 5);
        }
      };
      let reads = 0;
      const reader = async () => {
        const sql = connect();
        while (performance.now() < deadline) {
          // In any one snapshot the ids are exactly 1..max: none can be read before every smaller one.
          const [row] = await sql<{ n: number; top: number }[]>`
            SELECT count(*)::int AS n, coalesce(max(id), 0)::int AS top FROM event_order`;
          expect(row?.n).toBe(row?.top as number);
          reads++;
          await Bun.sleep(1);
        }
      };
      await Promise.all([...[0, 1, 2, 3, 4, 5].map(writer), sequencer(), sequencer(), reader()]);

      const sql = connect();
      await sequenced(sql);
      const events = await sql<
        { id: number | null; data: string }[]
      >`SELECT id::int AS id, data FROM events ORDER BY id`;
      const committed = [...written].filter(([, at]) => at.committed !== undefined).map(([tag]) => tag);
      expect(reads).toBeGreaterThan(10);
      expect(committed.length).toBeGreaterThan(100);
      expect(committed.length).toBeLessThan(written.size);
      expect(events.map((event) => JSON.parse(event.data).tag).sort()).toEqual(committed.sort());
      expect(events.map((event) => event.id)).toEqual(events.map((_, i) => i + 1));
      // An event committed before another was even sent has the smaller id.
      let earliestLaterCommit = Number.POSITIVE_INFINITY;
      for (const event of [...events].reverse()) {
        const at = written.get(JSON.parse(event.data).tag) as { sent: number; committed: number };
        expect(earliestLaterCommit).toBeGreaterThan(at.sent);
        earliestLaterCommit = Math.min(earliestLaterCommit, at.committed);
      }
      // Idle, the sequencer has settled every seq handed out: it looks at nothing more.
      const [state] = await sql<{ settled: boolean }[]>`
        SELECT settled_seq = pg_sequence_last_value('event_seqs') AS settled FROM event_ids`;
      expect(state?.settled).toBe(true);
    }, 20_000);

    test("a transaction held open keeps its seq unsettled while later events are sequenced; once it commits it gets the next id, and a rolled-back one none", async () => {
      const { connect } = await freshSchema();
      const sql = connect();
      const slow = await connect().reserve();
      await slow`BEGIN`;
      const [held] = await slow<{ seq: number }[]>`
        INSERT INTO event_records (type, occurred_at, data) VALUES ('points.charged', 0, '{"tag":"slow"}') RETURNING seq::int AS seq`;
      // Sequenced at once, before any later transaction completes: the open one has the newest
      // transaction id, which a snapshot's xmax (the newest completed one, plus one) would not cover.
      expect(await sequenced(sql)).toBe(0);
      expect(await sequenced(sql)).toBe(0);
      const doomed = await connect().reserve();
      await doomed`BEGIN`;
      await doomed`INSERT INTO event_records (type, occurred_at, data) VALUES ('points.charged', 0, '{"tag":"doomed"}')`;
      for (let i = 0; i < 20; i++) {
        await sql`INSERT INTO event_records (type, occurred_at, data) VALUES ('points.charged', 0, ${JSON.stringify({ tag: i })})`;
        expect(await sequenced(sql)).toBe(1);
      }
      const settled = async () => Number((await sql`SELECT settled_seq FROM event_ids`)[0]?.settled_seq);
      expect(await settled()).toBeLessThan(held?.seq as number);
      await doomed`ROLLBACK`;
      doomed.release();
      await slow`COMMIT`;
      slow.release();
      expect(await sequenced(sql)).toBe(1);
      const events = await sql<{ id: number; data: string }[]>`SELECT id::int AS id, data FROM events ORDER BY id`;
      expect(events.map((event) => [event.id, JSON.parse(event.data).tag])).toEqual([
        ...Array.from({ length: 20 }, (_, i) => [i + 1, i]),
        [21, "slow"],
      ]);
      await sequenced(sql);
      expect(await settled()).toBeGreaterThan((held?.seq as number) + 20);
    });

    test("an event's type is one of the domain's, checked by the event_type domain", async () => {
      const { connect } = await freshSchema();
      const sql = connect();
      const insert = (type: string) =>
        sql`INSERT INTO event_records (type, occurred_at, data) VALUES (${type}, 0, '{}')`.then(
          () => "ok",
          (error) => error.code,
        );
      expect(await Promise.all(eventTypes.map(insert))).toEqual(eventTypes.map(() => "ok"));
      expect(await insert("coupon.returned")).toBe("23514");
      expect(await insert("")).toBe("23514");
    });

    test("0010 keeps an outbox's ids, gives the next ones to the events still without one, and the feed reads on", async () => {
      const { schema, connect } = await freshSchema(false);
      const sql = connect();
      const upTo = pgMigrations.findIndex((migration) => migration.tag === "0010_events_ordered_apart");
      await sql.unsafe(`CREATE SCHEMA "${schema}"`);
      await sql.unsafe(
        `CREATE TABLE "${schema}".__drizzle_migrations (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at bigint)`,
      );
      for (const migration of pgMigrations.slice(0, upTo)) {
        for (const statement of migration.sql.split("--> statement-breakpoint")) await sql.unsafe(statement);
        const hash = createHash("sha256").update(migration.sql).digest("hex");
        await sql`INSERT INTO __drizzle_migrations (hash, created_at) VALUES (${hash}, ${migration.when})`;
      }
      // As 0009 left it: three events with ids, then two the sequencer has not reached yet.
      const insert = (n: number) =>
        sql`INSERT INTO events (type, occurred_at, data) VALUES ('points.charged', ${n}, ${JSON.stringify({ n })})`;
      for (const n of [1, 2, 3]) await insert(n);
      expect((await sql`SELECT sequence_events(1000) AS given`)[0]?.given).toBe(3);
      for (const n of [4, 5]) await insert(n);

      const db = await openPg({ url: TEST_DATABASE_URL, schema, poolMax: 2, statementTimeoutMs: 10_000 });
      try {
        expect([...(await sql`SELECT seq::int AS seq, id::int AS id FROM events ORDER BY seq`)]).toEqual([
          { seq: 1, id: 1 },
          { seq: 2, id: 2 },
          { seq: 3, id: 3 },
          { seq: 4, id: null },
          { seq: 5, id: null },
        ]);
        expect((await sql`SELECT settled_seq::int AS s FROM event_ids`)[0]?.s).toBe(3);
        expect(
          (
            await sql`SELECT indexname FROM pg_indexes WHERE schemaname = ${schema} AND tablename = 'event_records'`
          ).map((index) => index.indexname),
        ).toEqual(["event_records_pkey"]);
        await sql`INSERT INTO event_records (type, occurred_at, data) VALUES ('points.charged', 6, '{"n":6}')`;
        const outbox = new PgOutbox(db, true);
        const feed = await outbox.eventsAfter(0, 10);
        expect(feed.map((event) => [event.id, event.occurredAt, JSON.parse(event.data).n])).toEqual(
          [1, 2, 3, 4, 5, 6].map((n) => [n, n, n]),
        );
        expect([...(await sql`SELECT seq::int AS seq FROM event_records ORDER BY seq DESC LIMIT 1`)]).toEqual([
          { seq: 6 },
        ]);
      } finally {
        await db.$client.end({ timeout: 5 });
      }
    });
  });
}
