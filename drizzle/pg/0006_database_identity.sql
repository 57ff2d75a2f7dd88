-- Custom migration (drizzle-kit generate --custom): this database's identity, a random id made once,
-- here. What flashcart keeps outside the database on its behalf (the redis coupon strategy's keys,
-- `flashcart:<id>:coupon:…`) is named with it, so two databases sharing one Redis (two deployments,
-- or a database and itself after a reset) never share state. One row, read once at start-up.
CREATE TABLE database_identity (
  one_row boolean PRIMARY KEY DEFAULT true,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  CONSTRAINT database_identity_one_row CHECK (one_row)
);
--> statement-breakpoint
INSERT INTO database_identity DEFAULT VALUES;
