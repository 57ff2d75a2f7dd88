-- Custom migration (drizzle-kit generate --custom): take_coupon_sharded decides "sold out" without the
-- drop's row lock. 0008 had a claim that filled its shard take the drop's row (FOR NO KEY UPDATE) to see
-- every earlier filler's commit. But the drop's first claim holds that row (shard_coupon's FOR UPDATE)
-- until it commits, and may itself be looking for a shard with room: when the only shards that look
-- open are ones fillers hold while they wait for the row, the first claim polls (SKIP LOCKED, then
-- 1 ms sleeps) and the fillers wait for it, forever: a cycle PostgreSQL's deadlock detector cannot see,
-- since the poller waits for no lock. Seen: four pgbench sessions looping for 30 minutes. The fillers
-- now queue on a transaction-level advisory lock of their own per drop, which nothing else takes: a
-- filler holding it waits for nothing more, so no cycle can form. Same answers, same single
-- coupon.sold_out: a filler still decides in a statement of its own, after every earlier filler has
-- committed and released the lock.
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
