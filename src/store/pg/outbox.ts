/**
 * The outbox on PostgreSQL. Events are written by the writes themselves (the take_coupon functions,
 * place_order, the transactions of writes.ts) into event_records, without a public id; before
 * anything reads them, the sequencer gives ids to the committed ones as rows of event_order
 * (sequence_events(), drizzle/pg/0010: see there and schema.ts for why the insert's own sequence
 * cannot be the id). Reads join the two, in id order: commit order.
 *
 * Every read by id is bounded above by the last id given (event_ids.last_id) as well as below: with
 * both bounds PostgreSQL plans an index range scan even on tables without statistics.
 */
import { sql } from "drizzle-orm";
import type postgres from "postgres";
import { EventTally, type StoredEvent } from "../../domain/events.ts";
import type { Outbox, RelayLock } from "../port.ts";
import type { PgDb } from "./database.ts";
import { eventSinks } from "./schema.ts";

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
    this.q = {
      delivered: db
        .select({ id: eventSinks.deliveredId })
        .from(eventSinks)
        .where(sql`${eventSinks.sink} = ${sql.placeholder("sink")}`)
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
    return await this.db.$client<StoredEvent[]>`
      SELECT o.id::float8 AS id, r.type, r.occurred_at::float8 AS "occurredAt", r.data
      FROM event_order o JOIN event_records r ON r.seq = o.seq
      WHERE o.id > ${after}::bigint AND o.id <= (SELECT last_id FROM event_ids WHERE id = 1)
      ORDER BY o.id LIMIT ${limit}::int`;
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
    const [row] = await this.db.$client<{ at: number | null }[]>`
      SELECT least(
        (SELECT r.occurred_at FROM event_order o JOIN event_records r ON r.seq = o.seq
         WHERE o.id > ${after}::bigint AND o.id <= (SELECT last_id FROM event_ids WHERE id = 1)
         ORDER BY o.id LIMIT 1),
        oldest_unsequenced_event())::float8 AS at`;
    return row?.at ?? null;
  }

  async purgeEvents(before: number, sinks: readonly string[]): Promise<number> {
    let upTo = Number.MAX_SAFE_INTEGER;
    for (const sink of sinks) upTo = Math.min(upTo, await this.deliveredTo(sink));
    let removed = 0;
    for (;;) {
      // A record and its id go together, in one statement: a record left without its event_order row
      // would be given a second id.
      const [row] = await this.db.$client<{ removed: number }[]>`
        WITH doomed AS (
          SELECT o.id, o.seq FROM event_order o JOIN event_records r ON r.seq = o.seq
          WHERE o.id <= ${upTo}::bigint
            -- The newest event stays, as on SQLite (where the next id depends on it).
            AND o.id < (SELECT max(id) FROM event_order)
            AND r.occurred_at < ${before}::bigint
          ORDER BY o.id LIMIT ${PURGE_CHUNK}::int
        ),
        unordered AS (DELETE FROM event_order WHERE id IN (SELECT id FROM doomed) RETURNING seq),
        gone AS (DELETE FROM event_records WHERE seq IN (SELECT seq FROM unordered) RETURNING 1)
        SELECT count(*)::int AS removed FROM gone`;
      const chunk = row?.removed ?? 0;
      removed += chunk;
      if (chunk < PURGE_CHUNK) return removed;
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
