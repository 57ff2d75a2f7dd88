-- Custom migration (drizzle-kit generate --custom): COUPON_STRATEGY=sharded, a drop without a hot row.
-- A sharded drop's remaining supply lives in N counter rows (coupon_shards); its own row then shows the
-- whole supply as handed to the shards (issued_quantity = total_quantity), so every other strategy's
-- guard (`issued < total`) refuses it as sold out: switching strategies can never over-issue.
-- The drop's claimed count is issued_quantity - Σ(shard.total - shard.issued).
CREATE TABLE IF NOT EXISTS coupon_shards (
  coupon_id integer NOT NULL REFERENCES coupons (id),
  shard integer NOT NULL,
  total integer NOT NULL,
  issued integer NOT NULL DEFAULT 0,
  PRIMARY KEY (coupon_id, shard),
  CONSTRAINT coupon_shards_total_positive CHECK (total > 0),
  CONSTRAINT coupon_shards_issued_within_total CHECK (issued >= 0 AND issued <= total)
);
--> statement-breakpoint
-- Splits a drop's remaining supply over N = min(16, ceil(remaining / 8)) shards, once: up to 16, so the
-- pool's connections rarely wait for one another; at least 8 coupons a shard, so a claim rarely meets a
-- shard that has just emptied. Concurrent first claims queue on the drop's row; the first one shards it.
CREATE OR REPLACE FUNCTION shard_coupon(p_coupon_id integer)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
  remaining integer;
  shards integer;
BEGIN
  SELECT total_quantity - issued_quantity INTO remaining FROM coupons WHERE id = p_coupon_id FOR UPDATE;
  IF remaining IS NULL OR remaining <= 0 OR EXISTS (SELECT 1 FROM coupon_shards WHERE coupon_id = p_coupon_id) THEN
    RETURN;
  END IF;
  shards := least(16, ceil(remaining / 8.0)::integer);
  INSERT INTO coupon_shards (coupon_id, shard, total)
  SELECT p_coupon_id, n, remaining / shards + CASE WHEN n <= remaining % shards THEN 1 ELSE 0 END
  FROM generate_series(1, shards) AS n;
  UPDATE coupons SET issued_quantity = total_quantity WHERE id = p_coupon_id;
END;
$$;
--> statement-breakpoint
-- The sharded strategy's `takeCoupon` move (src/domain/writes.ts), one round trip in autocommit: the
-- one-per-user guard, then a slot from a random shard with room (FOR UPDATE SKIP LOCKED: a shard being
-- claimed is passed over, not waited for), moving on when a shard is empty; -2 only when every shard is.
-- Answers the new user coupon's id, -1 when the user holds this coupon, -2 when none is left.
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
    IF NOT FOUND THEN
      -- Every shard with room is being claimed right now: wait for one of them (READ COMMITTED re-checks
      -- `issued < total` once it is free, and finds no row if that one has just emptied).
      SELECT shard INTO slot FROM coupon_shards
      WHERE coupon_id = p_coupon_id AND issued < total
      ORDER BY random() LIMIT 1 FOR UPDATE;
    END IF;
    IF FOUND THEN
      UPDATE coupon_shards SET issued = issued + 1 WHERE coupon_id = p_coupon_id AND shard = slot;
      RETURN held;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM coupon_shards WHERE coupon_id = p_coupon_id AND issued < total) THEN
      DELETE FROM user_coupons WHERE id = held;
      RETURN -2;
    END IF;
  END LOOP;
END;
$$;
