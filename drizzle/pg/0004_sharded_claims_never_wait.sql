-- Custom migration (drizzle-kit generate --custom): take_coupon_sharded never waits on a shard's lock.
-- 0003 waited with a blocking `FOR UPDATE` when every shard with room was being claimed. Under READ
-- COMMITTED a row lock taken on a row that then fails the re-check (`issued < total`: it just filled)
-- is kept until the commit, so a claim could hold a full shard while waiting for the next one, and two
-- such claims deadlocked (measured: 29 "deadlock detected" in one test run, each costing
-- deadlock_timeout, 1 s, before the retry). Now a claim only ever takes shards with SKIP LOCKED and,
-- when every shard with room is busy, sleeps 1 ms and looks again: it never waits for a lock while
-- holding one, so no cycle can form. Same answers: the new user coupon's id, -1 already held, -2 sold
-- out (only when every shard is empty).
CREATE OR REPLACE FUNCTION take_coupon_sharded(p_user_id integer, p_coupon_id integer, p_issued_at bigint, p_expires_at bigint)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
  held integer;
  slot integer;
BEGIN
  IF EXISTS (SELECT 1 FROM user_coupons WHERE user_id = p_user_id AND coupon_id = p_coupon_id) THEN
    RETURN -1;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM coupon_shards WHERE coupon_id = p_coupon_id) THEN
    PERFORM shard_coupon(p_coupon_id);
  END IF;
  IF NOT EXISTS (SELECT 1 FROM coupon_shards WHERE coupon_id = p_coupon_id AND issued < total) THEN
    RETURN -2;
  END IF;
  INSERT INTO user_coupons (user_id, coupon_id, status, issued_at, expires_at)
  VALUES (p_user_id, p_coupon_id, 'AVAILABLE', p_issued_at, p_expires_at)
  ON CONFLICT (user_id, coupon_id) DO NOTHING
  RETURNING id INTO held;
  IF held IS NULL THEN
    RETURN -1;
  END IF;
  LOOP
    SELECT shard INTO slot FROM coupon_shards
    WHERE coupon_id = p_coupon_id AND issued < total
    ORDER BY random() LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF FOUND THEN
      UPDATE coupon_shards SET issued = issued + 1 WHERE coupon_id = p_coupon_id AND shard = slot;
      RETURN held;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM coupon_shards WHERE coupon_id = p_coupon_id AND issued < total) THEN
      DELETE FROM user_coupons WHERE id = held;
      RETURN -2;
    END IF;
    -- Every shard with room is being claimed right now; each is held only until its claim commits.
    PERFORM pg_sleep(0.001);
  END LOOP;
END;
$$;
