-- Custom migration (drizzle-kit generate --custom): the outbox costs its writes less (issue #13 item 5).
--
-- What 0007/0008 cost, measured (a single session, 20,000 sequenced events in the table, 100 × (insert
-- 200 events, sequence them), WAL by pg_current_wal_lsn): inserting an event wrote 456 bytes of WAL, and
-- giving it its id 567 more. The sequencer set `id` with an UPDATE that could not be HOT (`id` is
-- indexed): a second copy of the whole ~300-byte row, an entry in each of the two indexes, and a dead
-- row left behind for vacuum. And it found the events without an id with a plan that, on a table with
-- no statistics (a new schema, or autovacuum off), walked every event in seq order: a call giving 200
-- ids took 11 ms at 20,000 events, 47 ms at 100,000, 136 ms at 300,000; the relay calls it several
-- times a second while it delivers.
--
-- Now:
-- - event_records: the events as their writes insert them (0007's events without `id`): one index,
--   and the type checked by a domain (see below).
-- - event_order: (id, seq), one narrow row per event, inserted by the sequencer; records are never
--   updated. 597 bytes of WAL per event in all (391 the insert, 206 the id), nothing left for vacuum;
--   a call giving 200 ids takes 0.7 ms, however many events the table holds.
-- - events: a view of the two, as the table read before (a record not sequenced yet has a null id).
-- - The sequencer looks only at records above `settled_seq`, below which every record has an id or
--   never will exist, and below the last seq handed out: a bounded range of the primary key, whatever
--   the statistics say. (How `settled_seq` moves: see sequence_events below.)
-- The functions that write events insert into event_records; their signatures and answers are
-- unchanged. A process of an earlier build still running while this applies keeps its claims and
-- orders (through those functions), but its cancels and charges with EVENTS=on fail (it inserts their
-- events into `events`, now a view) until it is replaced.
ALTER TABLE events RENAME TO event_records;
--> statement-breakpoint
ALTER TABLE event_records RENAME CONSTRAINT events_pkey TO event_records_pkey;
--> statement-breakpoint
-- The type's check, as a domain: PostgreSQL rebuilds a table's CHECK expressions from their stored text
-- for every statement that inserts (each call of a function, each execution of a prepared insert),
-- while a domain's check is prepared once per connection. Measured in a PL/pgSQL loop of inserts: the
-- table's five-value CHECK cost 3.5-4 µs of the insert's 8.5-9, the domain 0.2.
CREATE DOMAIN event_type AS text
  CONSTRAINT event_type_known CHECK (VALUE IN ('coupon.claimed', 'coupon.sold_out', 'order.paid', 'order.cancelled', 'points.charged'));
--> statement-breakpoint
ALTER TABLE event_records DROP CONSTRAINT events_type;
--> statement-breakpoint
ALTER TABLE event_records ALTER COLUMN type TYPE event_type;
--> statement-breakpoint
CREATE TABLE event_order (
  id bigint PRIMARY KEY NOT NULL,
  seq bigint NOT NULL,
  CONSTRAINT event_order_id_positive CHECK (event_order.id > 0)
);
--> statement-breakpoint
CREATE UNIQUE INDEX event_order_seq_unique ON event_order USING btree (seq);
--> statement-breakpoint
INSERT INTO event_order (id, seq) SELECT id, seq FROM event_records WHERE id IS NOT NULL;
--> statement-breakpoint
-- settled_seq: every record with a seq up to it has an id, or never will exist. Under this migration's
-- lock no write is in flight, so that is every seq below the first record still without an id.
ALTER TABLE event_ids
  ADD COLUMN settled_seq bigint DEFAULT 0 NOT NULL,
  ADD COLUMN candidate_seq bigint DEFAULT 0 NOT NULL,
  ADD COLUMN candidate_xmax xid8;
--> statement-breakpoint
UPDATE event_ids SET settled_seq = coalesce(
  (SELECT min(seq) - 1 FROM event_records WHERE id IS NULL), (SELECT max(seq) FROM event_records), 0);
--> statement-breakpoint
DROP INDEX events_id_unique;
--> statement-breakpoint
ALTER TABLE event_records DROP COLUMN id;
--> statement-breakpoint
-- seq's default takes the writing transaction's id first (pg_current_xact_id() assigns one if it has
-- none yet), then the next value: so every seq handed out belongs to a transaction that had its id
-- before. The sequencer relies on it to settle seqs (see there). `seq` stays the primary key, but is no
-- longer an identity column (an identity's default cannot be an expression); same values onwards.
CREATE SEQUENCE event_seqs AS bigint OWNED BY event_records.seq;
--> statement-breakpoint
SELECT setval('event_seqs', last_value, is_called) FROM events_seq_seq;
--> statement-breakpoint
ALTER TABLE event_records ALTER COLUMN seq DROP IDENTITY;
--> statement-breakpoint
ALTER TABLE event_records ALTER COLUMN seq
  SET DEFAULT CASE WHEN pg_current_xact_id() IS NOT NULL THEN nextval('event_seqs'::regclass) END;
--> statement-breakpoint
CREATE VIEW events AS
  SELECT r.seq, o.id, r.type, r.occurred_at, r.data
  FROM event_records r LEFT JOIN event_order o ON o.seq = r.seq;
--> statement-breakpoint
-- The sequencer: gives ids to committed records, in seq order, from the last id given, by inserting
-- their event_order rows. One runs at a time (the next waits on event_ids' row, then reads afresh: each
-- statement of a READ COMMITTED function takes a new snapshot), so ids are given once (event_order's
-- unique seq says so too), in order, and an id is only ever given to a record whose smaller ids are
-- all visible already. An uncommitted record is not seen yet, and gets the next id once it has
-- committed. Answers how many ids it gave (at most p_limit).
--
-- It looks only at seqs in (settled_seq, top], top being the last seq handed out when it starts. To
-- move settled_seq up safely it notes a candidate: top, read before its transaction has an id, and
-- that id (candidate_xmax), given to it afterwards (by FOR UPDATE). Every seq up to candidate_seq was
-- handed out before, to a transaction that had its id already (seq's default), so an id below
-- candidate_xmax. A later call that sees no transaction below candidate_xmax still running
-- (pg_snapshot_xmin) knows each of those records is committed, and visible to its next statement, or
-- will never exist; once that statement has given ids to every record it found (fewer than p_limit),
-- none up to candidate_seq is left without one. (A snapshot's xmax would not do as the bound: it is
-- the newest *completed* id plus one, and a transaction with a larger id may be running already.) A
-- call made in a transaction that has an id already notes no candidate.
-- Both tables are read within the same seq range, bounded on both sides: PostgreSQL estimates such a
-- range as narrow even without statistics, and plans index scans of it (an open range it estimates
-- at a third of the table, and may scan all of it). The range spans the records written since the
-- oldest transaction still running began (any transaction of the server: a session left idle in a
-- transaction lengthens it, as it holds back vacuum).
CREATE OR REPLACE FUNCTION sequence_events(p_limit integer)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
  fresh boolean := pg_current_xact_id_if_assigned() IS NULL;
  top bigint;
  state event_ids%ROWTYPE;
  reach bigint;
  settled boolean;
  given integer;
BEGIN
  -- Nothing to do costs no lock and no write (the relay asks several times a second): no record to
  -- sequence, and settled_seq already at the top or not movable yet.
  top := coalesce(pg_sequence_last_value('event_seqs'), 0);
  SELECT * INTO state FROM event_ids WHERE id = 1;
  IF top <= state.settled_seq THEN
    RETURN 0;
  END IF;
  IF state.candidate_xmax IS NOT NULL AND pg_snapshot_xmin(pg_current_snapshot()) < state.candidate_xmax
    AND NOT EXISTS (
      SELECT 1 FROM event_records r
      WHERE r.seq > state.settled_seq AND r.seq <= top
        AND NOT EXISTS (
          SELECT 1 FROM event_order o WHERE o.seq = r.seq AND o.seq > state.settled_seq AND o.seq <= top
        )
    ) THEN
    RETURN 0;
  END IF;
  SELECT * INTO state FROM event_ids WHERE id = 1 FOR UPDATE;
  SELECT state.candidate_xmax IS NOT NULL AND pg_snapshot_xmin(pg_current_snapshot()) >= state.candidate_xmax
  INTO settled;
  reach := greatest(top, state.candidate_seq);
  INSERT INTO event_order (id, seq)
  SELECT state.last_id + row_number() OVER (ORDER BY pending.seq), pending.seq
  FROM (
    SELECT r.seq FROM event_records r
    WHERE r.seq > state.settled_seq AND r.seq <= reach
      AND NOT EXISTS (
        SELECT 1 FROM event_order o WHERE o.seq = r.seq AND o.seq > state.settled_seq AND o.seq <= reach
      )
    ORDER BY r.seq LIMIT p_limit
  ) pending;
  GET DIAGNOSTICS given = ROW_COUNT;
  IF settled AND given < p_limit THEN
    state.settled_seq := greatest(state.settled_seq, state.candidate_seq);
    state.candidate_xmax := NULL;
  END IF;
  IF state.candidate_xmax IS NULL AND fresh THEN
    state.candidate_seq := top;
    state.candidate_xmax := pg_current_xact_id();
  END IF;
  UPDATE event_ids
  SET last_id = state.last_id + given, settled_seq = state.settled_seq,
      candidate_seq = state.candidate_seq, candidate_xmax = state.candidate_xmax
  WHERE id = 1;
  RETURN given;
END;
$$;
--> statement-breakpoint
-- The earliest occurred_at of the records without an id yet (null: none), for the relay's lag.
CREATE FUNCTION oldest_unsequenced_event()
RETURNS bigint
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
  top bigint := coalesce(pg_sequence_last_value('event_seqs'), 0);
  settled bigint := (SELECT settled_seq FROM event_ids WHERE id = 1);
BEGIN
  RETURN (
    SELECT min(r.occurred_at) FROM event_records r
    WHERE r.seq > settled AND r.seq <= top
      AND NOT EXISTS (SELECT 1 FROM event_order o WHERE o.seq = r.seq AND o.seq > settled AND o.seq <= top)
  );
END;
$$;
--> statement-breakpoint
-- 0008's take_coupon, 0009's take_coupon_sharded and 0008's place_order, recording into event_records.
CREATE OR REPLACE FUNCTION take_coupon(
  p_user_id integer,
  p_coupon_id integer,
  p_issued_at bigint,
  p_expires_at bigint,
  p_claimed_after_id text DEFAULT NULL,
  p_sold_out_data text DEFAULT NULL,
  OUT taken integer,
  OUT sold_out boolean
)
LANGUAGE plpgsql
AS $$
DECLARE
  held integer;
BEGIN
  sold_out := false;
  IF EXISTS (SELECT 1 FROM user_coupons WHERE user_id = p_user_id AND coupon_id = p_coupon_id) THEN
    taken := -1;
    RETURN;
  END IF;
  IF EXISTS (SELECT 1 FROM coupons WHERE id = p_coupon_id AND issued_quantity >= total_quantity) THEN
    taken := -2;
    RETURN;
  END IF;
  INSERT INTO user_coupons (user_id, coupon_id, status, issued_at, expires_at)
  VALUES (p_user_id, p_coupon_id, 'AVAILABLE', p_issued_at, p_expires_at)
  ON CONFLICT (user_id, coupon_id) DO NOTHING
  RETURNING id INTO held;
  IF held IS NULL THEN
    taken := -1;
    RETURN;
  END IF;
  UPDATE coupons SET issued_quantity = issued_quantity + 1
  WHERE id = p_coupon_id AND issued_quantity < total_quantity
  RETURNING issued_quantity = total_quantity INTO sold_out;
  IF NOT FOUND THEN
    DELETE FROM user_coupons WHERE id = held;
    sold_out := false;
    taken := -2;
    RETURN;
  END IF;
  IF p_claimed_after_id IS NOT NULL THEN
    INSERT INTO event_records (type, occurred_at, data)
    VALUES ('coupon.claimed', p_issued_at, '{"id":' || held || ',' || p_claimed_after_id);
    IF sold_out THEN
      INSERT INTO event_records (type, occurred_at, data) VALUES ('coupon.sold_out', p_issued_at, p_sold_out_data);
    END IF;
  END IF;
  taken := held;
END;
$$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION take_coupon_sharded(
  p_user_id integer,
  p_coupon_id integer,
  p_issued_at bigint,
  p_expires_at bigint,
  p_claimed_after_id text DEFAULT NULL,
  p_sold_out_data text DEFAULT NULL,
  OUT taken integer,
  OUT sold_out boolean
)
LANGUAGE plpgsql
AS $$
DECLARE
  held integer;
  slot integer;
  shard_full boolean;
BEGIN
  sold_out := false;
  IF EXISTS (SELECT 1 FROM user_coupons WHERE user_id = p_user_id AND coupon_id = p_coupon_id) THEN
    taken := -1;
    RETURN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM coupon_shards WHERE coupon_id = p_coupon_id) THEN
    PERFORM shard_coupon(p_coupon_id);
  END IF;
  IF NOT EXISTS (SELECT 1 FROM coupon_shards WHERE coupon_id = p_coupon_id AND issued < total) THEN
    taken := -2;
    RETURN;
  END IF;
  INSERT INTO user_coupons (user_id, coupon_id, status, issued_at, expires_at)
  VALUES (p_user_id, p_coupon_id, 'AVAILABLE', p_issued_at, p_expires_at)
  ON CONFLICT (user_id, coupon_id) DO NOTHING
  RETURNING id INTO held;
  IF held IS NULL THEN
    taken := -1;
    RETURN;
  END IF;
  LOOP
    SELECT shard INTO slot FROM coupon_shards
    WHERE coupon_id = p_coupon_id AND issued < total
    ORDER BY random() LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF FOUND THEN
      UPDATE coupon_shards SET issued = issued + 1 WHERE coupon_id = p_coupon_id AND shard = slot
      RETURNING issued = total INTO shard_full;
      IF shard_full THEN
        -- One shard-filler at a time per drop, until its commit (any fixed first key: flashcart's own).
        PERFORM pg_advisory_xact_lock(7160917, p_coupon_id);
        sold_out := NOT EXISTS (SELECT 1 FROM coupon_shards WHERE coupon_id = p_coupon_id AND issued < total);
      END IF;
      IF p_claimed_after_id IS NOT NULL THEN
        INSERT INTO event_records (type, occurred_at, data)
        VALUES ('coupon.claimed', p_issued_at, '{"id":' || held || ',' || p_claimed_after_id);
        IF sold_out THEN
          INSERT INTO event_records (type, occurred_at, data) VALUES ('coupon.sold_out', p_issued_at, p_sold_out_data);
        END IF;
      END IF;
      taken := held;
      RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM coupon_shards WHERE coupon_id = p_coupon_id AND issued < total) THEN
      DELETE FROM user_coupons WHERE id = held;
      taken := -2;
      RETURN;
    END IF;
    -- Every shard with room is being claimed right now; each is held only until its claim commits.
    PERFORM pg_sleep(0.001);
  END LOOP;
END;
$$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION place_order(
  p_order_id integer,
  p_user_id integer,
  p_product_ids integer[],
  p_quantities integer[],
  p_unit_prices bigint[],
  p_user_coupon_id integer,
  p_total_amount bigint,
  p_discount_amount bigint,
  p_paid_amount bigint,
  p_now bigint,
  p_key text,
  p_fingerprint text,
  p_status_code integer,
  p_response_body text,
  p_event text DEFAULT NULL
)
RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
  line integer;
  balance_after bigint;
BEGIN
  IF p_key IS NOT NULL THEN
    -- A request with the same key still in flight makes this wait for it to end.
    INSERT INTO idempotency_keys (user_id, key, fingerprint, status_code, response_body, created_at)
    VALUES (p_user_id, p_key, p_fingerprint, p_status_code, p_response_body, p_now)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
      RETURN 'KEY_TAKEN';
    END IF;
  END IF;
  -- Lines arrive in ascending product id: two orders never lock each other's rows in opposite order.
  FOR line IN 1 .. cardinality(p_product_ids) LOOP
    UPDATE products SET stock = stock - p_quantities[line]
    WHERE id = p_product_ids[line] AND stock >= p_quantities[line];
    IF NOT FOUND THEN
      RAISE EXCEPTION USING ERRCODE = 'FC409', MESSAGE = 'STOCK:' || line;
    END IF;
  END LOOP;
  IF p_user_coupon_id IS NOT NULL THEN
    UPDATE user_coupons SET status = 'USED', used_at = p_now WHERE id = p_user_coupon_id AND status = 'AVAILABLE';
    IF NOT FOUND THEN
      RAISE EXCEPTION USING ERRCODE = 'FC409', MESSAGE = 'COUPON';
    END IF;
  END IF;
  IF p_paid_amount > 0 THEN
    UPDATE users SET balance = balance - p_paid_amount
    WHERE id = p_user_id AND balance >= p_paid_amount
    RETURNING balance INTO balance_after;
    IF NOT FOUND THEN
      RAISE EXCEPTION USING ERRCODE = 'FC409', MESSAGE = 'POINTS';
    END IF;
  END IF;
  INSERT INTO orders (id, user_id, status, total_amount, discount_amount, paid_amount, user_coupon_id, created_at)
  OVERRIDING SYSTEM VALUE
  VALUES (p_order_id, p_user_id, 'PAID', p_total_amount, p_discount_amount, p_paid_amount, p_user_coupon_id, p_now);
  INSERT INTO order_items (order_id, product_id, quantity, unit_price)
  SELECT p_order_id, item.product_id, item.quantity, item.unit_price
  FROM unnest(p_product_ids, p_quantities, p_unit_prices) AS item(product_id, quantity, unit_price);
  IF p_paid_amount > 0 THEN
    INSERT INTO point_history (user_id, type, amount, balance_after, order_id, created_at)
    VALUES (p_user_id, 'USE', p_paid_amount, balance_after, p_order_id, p_now);
  END IF;
  IF p_event IS NOT NULL THEN
    INSERT INTO event_records (type, occurred_at, data) VALUES ('order.paid', p_now, p_event);
  END IF;
  RETURN NULL;
END;
$$;
