-- Custom migration (drizzle-kit generate --custom): the outbox's events are written by the statement that
-- makes their effect (issue #13). take_coupon, take_coupon_sharded and place_order each take the events
-- the domain decided (src/domain/events.ts) as parameters and write them in the same call, still one round
-- trip in autocommit; NULL parameters (EVENTS=off, the pgbench yardstick) write none. Their other answers
-- are unchanged. The functions of 0001-0004 are replaced: a new parameter list is a new function.
INSERT INTO event_ids (id, last_id) VALUES (1, 0) ON CONFLICT DO NOTHING;
--> statement-breakpoint
-- The sequencer: gives public ids to committed events, in seq order, from the last id given. One runs at a
-- time (the next waits on event_ids' row, then reads afresh: each statement of a READ COMMITTED function
-- takes a new snapshot), so ids are given once, in order, and an id is only ever given to a row whose
-- smaller ids are all visible already. An uncommitted event is simply not seen yet, and gets the next id
-- once it has committed. Answers how many ids it gave (at most p_limit).
CREATE OR REPLACE FUNCTION sequence_events(p_limit integer)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
  last bigint;
  given integer;
BEGIN
  -- Nothing to do costs no lock and no write (the relay asks several times a second).
  IF NOT EXISTS (SELECT 1 FROM events WHERE id IS NULL) THEN
    RETURN 0;
  END IF;
  SELECT last_id INTO last FROM event_ids FOR UPDATE;
  WITH pending AS (
    SELECT seq, row_number() OVER (ORDER BY seq) AS n FROM events WHERE id IS NULL ORDER BY seq LIMIT p_limit
  )
  UPDATE events e SET id = last + pending.n FROM pending WHERE e.seq = pending.seq;
  GET DIAGNOSTICS given = ROW_COUNT;
  UPDATE event_ids SET last_id = last + given;
  RETURN given;
END;
$$;
--> statement-breakpoint
DROP FUNCTION IF EXISTS take_coupon(integer, integer, bigint, bigint);
--> statement-breakpoint
-- 0001's take_coupon, writing coupon.claimed (its data is '{"id":<the new id>,' || p_claimed_after_id, the
-- claim's answer byte for byte: src/domain/events.ts, claimedData) and, when this claim took the last
-- coupon (`issued` reached `total` in its own UPDATE, which holds the drop's row lock), coupon.sold_out.
-- `sold_out` says whether it did.
CREATE FUNCTION take_coupon(
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
    INSERT INTO events (type, occurred_at, data)
    VALUES ('coupon.claimed', p_issued_at, '{"id":' || held || ',' || p_claimed_after_id);
    IF sold_out THEN
      INSERT INTO events (type, occurred_at, data) VALUES ('coupon.sold_out', p_issued_at, p_sold_out_data);
    END IF;
  END IF;
  taken := held;
END;
$$;
--> statement-breakpoint
DROP FUNCTION IF EXISTS take_coupon_sharded(integer, integer, bigint, bigint);
--> statement-breakpoint
-- 0004's take_coupon_sharded, writing coupon.claimed, and coupon.sold_out when this claim emptied the last
-- shard with room. Two claims can fill the last two shards at once, each seeing the other's shard still
-- open (neither has committed): so a claim that fills its shard then takes the drop's row lock, and
-- decides in a statement of its own, after every claim that filled a shard before it has committed. The
-- last one to do so sees every shard full: exactly one claim writes coupon.sold_out. Only a shard's
-- last claim takes that lock (at most 16 per drop), and it never waits for a shard lock while holding it.
CREATE FUNCTION take_coupon_sharded(
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
        PERFORM 1 FROM coupons WHERE id = p_coupon_id FOR NO KEY UPDATE;
        sold_out := NOT EXISTS (SELECT 1 FROM coupon_shards WHERE coupon_id = p_coupon_id AND issued < total);
      END IF;
      IF p_claimed_after_id IS NOT NULL THEN
        INSERT INTO events (type, occurred_at, data)
        VALUES ('coupon.claimed', p_issued_at, '{"id":' || held || ',' || p_claimed_after_id);
        IF sold_out THEN
          INSERT INTO events (type, occurred_at, data) VALUES ('coupon.sold_out', p_issued_at, p_sold_out_data);
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
DROP FUNCTION IF EXISTS place_order(integer, integer, integer[], integer[], bigint[], integer, bigint, bigint, bigint, bigint, text, text, integer, text);
--> statement-breakpoint
-- 0002's place_order, writing order.paid (p_event: the order's JSON, the answer the API gives) with the
-- order. Same answers: NULL committed, 'KEY_TAKEN', or SQLSTATE FC409 for a refused guard.
CREATE FUNCTION place_order(
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
    INSERT INTO events (type, occurred_at, data) VALUES ('order.paid', p_now, p_event);
  END IF;
  RETURN NULL;
END;
$$;
