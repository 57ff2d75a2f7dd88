-- Custom migration (drizzle-kit generate --custom): an order's write in ONE round trip. It is the
-- `commitOrder` move of src/domain/writes.ts, nothing more: the guarded writes in the documented
-- order, all or nothing. Prices, amounts, coupon usability and the response body are decided by the
-- domain before the call; the function only takes stock, the coupon and the points, and writes rows.
-- Answers NULL when committed, 'KEY_TAKEN' when a request with the same Idempotency-Key committed
-- first (nothing written). A refused guard raises SQLSTATE FC409 with 'STOCK:<line>', 'COUPON' or
-- 'POINTS', so the statement, and with it every write of the order, is rolled back.
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
  p_response_body text
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
  RETURN NULL;
END;
$$;
