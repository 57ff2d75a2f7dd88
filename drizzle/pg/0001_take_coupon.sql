-- Custom migration (drizzle-kit generate --custom): a coupon claim's write in ONE round trip for the
-- atomic strategy. It is the `takeCoupon` move of src/domain/writes.ts, nothing more: the one-per-user
-- guard, then the supply guard, all or nothing. Rules (windows, existence) stay in the domain.
-- Answers the new user coupon's id, -1 when the user holds this coupon, -2 when none is left.
-- Called in autocommit, so the drop's row lock is held from the UPDATE to the commit only.
CREATE OR REPLACE FUNCTION take_coupon(p_user_id integer, p_coupon_id integer, p_issued_at bigint, p_expires_at bigint)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
  held integer;
BEGIN
  -- Lock-free refusals first, read from committed rows (both facts never revert): a loser of a
  -- stampede never queues on the drop's row lock.
  IF EXISTS (SELECT 1 FROM user_coupons WHERE user_id = p_user_id AND coupon_id = p_coupon_id) THEN
    RETURN -1;
  END IF;
  IF EXISTS (SELECT 1 FROM coupons WHERE id = p_coupon_id AND issued_quantity >= total_quantity) THEN
    RETURN -2;
  END IF;
  -- The guards themselves: the unique (user_id, coupon_id) index, then `issued < total`, re-checked by
  -- READ COMMITTED on the newest row version.
  INSERT INTO user_coupons (user_id, coupon_id, status, issued_at, expires_at)
  VALUES (p_user_id, p_coupon_id, 'AVAILABLE', p_issued_at, p_expires_at)
  ON CONFLICT (user_id, coupon_id) DO NOTHING
  RETURNING id INTO held;
  IF held IS NULL THEN
    RETURN -1;
  END IF;
  UPDATE coupons SET issued_quantity = issued_quantity + 1
  WHERE id = p_coupon_id AND issued_quantity < total_quantity;
  IF NOT FOUND THEN
    DELETE FROM user_coupons WHERE id = held;
    RETURN -2;
  END IF;
  RETURN held;
END;
$$;
