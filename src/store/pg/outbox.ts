/**
 * The outbox on PostgreSQL. Events are written by the writes themselves (the take_coupon functions,
 * place_order, the transactions of writes.ts) without a public id; before anything reads them, the
 * sequencer gives ids to the committed ones (sequence_events(), drizzle/pg/0008: see there and
 * schema.ts for why the insert's own sequence cannot be the id). Reads then see ids in commit order.
 */
import { and, asc, gt, isNotNull, lt, lte, sql } from "drizzle-orm";
import type postgres from "postgres";
import { EventTally, type StoredEvent } from "../../domain/events.ts";
import type { Outbox, RelayLock } from "../port.ts";
import type { PgDb } from "./database.ts";
import { eventSinks, events } from "./schema.ts";

/** Ids given per sequencer call at most (a backlog is sequenced over several calls). */
const SEQUENCE_CHUNK = 10_000;

/** Retention deletes this many events per statement at most, so no statement runs long. */
const PURGE_CHUNK = 5_000;

/** The advisory lock class of the relay; the key within it is the schema's hash (see AdvisoryLock). */
const RELAY_LOCK_CLASS = 716_091;

export class PgOutbox implements Outbox {
  readonly tally = new EventTally();
  readonly relayLock: RelayLock;
  private readonly q;

  constructor(
    private readonly db: PgDb,
    readonly recording: boolean,
  ) {
    const p = sql.placeholder;
    this.q = {
      after: db
        .select({
          id: sql<number>`${events.id}`.mapWith(Number),
          type: events.type,
          occurredAt: events.occurredAt,
          data: events.data,
        })
        .from(events)
        .where(gt(events.id, p("after")))
        .orderBy(asc(events.id))
        .limit(p("limit"))
        .prepare("events_after"),
      delivered: db
        .select({ id: eventSinks.deliveredId })
        .from(eventSinks)
        .where(sql`${eventSinks.sink} = ${p("sink")}`)
        .prepare("event_sink_cursor"),
    };
    this.relayLock = new AdvisoryLock(db.$client);
  }

  /** Gives ids to every committed event that has none yet; how many it gave. */
  private async sequence(): Promise<number> {
    let given = 0;
    for (;;) {
      const [row] = await this.db.$client<{ given: number }[]>`SELECT sequence_events(${SEQUENCE_CHUNK}::int) AS given`;
      const chunk = row?.given ?? 0;
      given += chunk;
      if (chunk < SEQUENCE_CHUNK) return given;
    }
  }

  /**
   * Sequences first, then reads: every event committed before the call is then readable. (Reading
   * first and sequencing only when short would miss ids another sequencer gave in between.)
   */
  async eventsAfter(after: number, limit: number): Promise<StoredEvent[]> {
    await this.sequence();
    return this.q.after.execute({ after, limit });
  }

  async deliveredTo(sink: string): Promise<number> {
    const [row] = await this.q.delivered.execute({ sink });
    return row?.id ?? 0;
  }

  async markDelivered(sink: string, id: number): Promise<void> {
    await this.db
      .insert(eventSinks)
      .values({ sink, deliveredId: id })
      .onConflictDoUpdate({
        target: eventSinks.sink,
        set: { deliveredId: sql`greatest(${eventSinks.deliveredId}, excluded.delivered_id)` },
      });
  }

  /** Events not sequenced yet are undelivered too. */
  async oldestUndelivered(sink: string): Promise<number | null> {
    const after = await this.deliveredTo(sink);
    const [row] = await this.db.$client<{ at: string | null }[]>`
      SELECT least((SELECT occurred_at FROM events WHERE id > ${after} ORDER BY id LIMIT 1),
                   (SELECT min(occurred_at) FROM events WHERE id IS NULL)) AS at`;
    return row?.at == null ? null : Number(row.at);
  }

  async purgeEvents(before: number, sinks: readonly string[]): Promise<number> {
    let upTo = Number.MAX_SAFE_INTEGER;
    for (const sink of sinks) upTo = Math.min(upTo, await this.deliveredTo(sink));
    let removed = 0;
    for (;;) {
      const chunk = this.db
        .select({ seq: events.seq })
        .from(events)
        // The newest event stays, as on SQLite (where the next id depends on it).
        .where(
          and(
            isNotNull(events.id),
            lte(events.id, upTo),
            lt(events.id, sql`(SELECT max(id) FROM events)`),
            lt(events.occurredAt, before),
          ),
        )
        .orderBy(asc(events.id))
        .limit(PURGE_CHUNK);
      const deleted = await this.db.delete(events).where(sql`${events.seq} IN ${chunk}`).returning({ seq: events.seq });
      removed += deleted.length;
      if (deleted.length < PURGE_CHUNK) return removed;
    }
  }
}

/**
 * The relay's lock across every process and host on this database: a session advisory lock, keyed by
 * the schema (several flashcart deployments may share a database), held on a connection reserved for
 * it. PostgreSQL releases it when that session ends, however the holder died: the next process to ask
 * takes over. A lost connection loses the lock: `held()` compares the session's backend pid with the
 * one that took it.
 */
class AdvisoryLock implements RelayLock {
  private session: { sql: postgres.ReservedSql; pid: number } | null = null;

  constructor(private readonly client: postgres.Sql) {}

  async acquire(): Promise<boolean> {
    if (await this.held()) return true;
    const reserved = await this.client.reserve();
    try {
      const [row] = await reserved<{ locked: boolean; pid: number }[]>`
        SELECT pg_try_advisory_lock(${RELAY_LOCK_CLASS}::int, hashtext(current_schema())) AS locked,
               pg_backend_pid() AS pid`;
      if (row?.locked) {
        this.session = { sql: reserved, pid: row.pid };
        return true;
      }
    } catch (error) {
      reserved.release();
      throw error;
    }
    reserved.release();
    return false;
  }

  async held(): Promise<boolean> {
    const session = this.session;
    if (session === null) return false;
    try {
      const [row] = await session.sql<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;
      if (row?.pid === session.pid) return true;
    } catch {
      // the session is gone, and the lock with it
    }
    this.session = null;
    session.sql.release();
    return false;
  }

  async release(): Promise<void> {
    const session = this.session;
    if (session === null) return;
    this.session = null;
    try {
      await session.sql`SELECT pg_advisory_unlock(${RELAY_LOCK_CLASS}::int, hashtext(current_schema()))`;
    } catch {
      // a session that is gone holds nothing
    }
    session.sql.release();
  }
}
