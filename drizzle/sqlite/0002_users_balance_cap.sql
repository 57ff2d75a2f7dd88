-- Hand-edited from drizzle-kit's rebuild of `users` (SQLite cannot add a CHECK to a table). Migrations run
-- inside one transaction, where `PRAGMA foreign_keys=OFF` does nothing: dropping `users` would orphan
-- every order, coupon, history row and idempotency key that points at it and fail. So the foreign keys are
-- deferred to the commit, the rows are set aside, and `users` is created again under its own name: each
-- user copied back is the parent its children point at again, so the commit finds nothing orphaned.
-- (drizzle-kit's `__new_users` renamed to `users` would leave them counted as orphans.) STRICT by hand.
-- A database holding a balance above the cap fails here, on users_balance_within_cap, and is left as it was.
PRAGMA defer_foreign_keys=ON;--> statement-breakpoint
CREATE TABLE `__old_users` (
	`id` integer PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`balance` integer NOT NULL,
	`created_at` integer NOT NULL
) STRICT;
--> statement-breakpoint
INSERT INTO `__old_users`("id", "name", "balance", "created_at") SELECT "id", "name", "balance", "created_at" FROM `users`;--> statement-breakpoint
DROP TABLE `users`;--> statement-breakpoint
CREATE TABLE `users` (
	`id` integer PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`balance` integer DEFAULT 0 NOT NULL,
	`created_at` integer NOT NULL,
	CONSTRAINT "users_balance_non_negative" CHECK("users"."balance" >= 0),
	CONSTRAINT "users_balance_within_cap" CHECK("users"."balance" <= 100000000),
	CONSTRAINT "users_name_length" CHECK(length("users"."name") BETWEEN 1 AND 100)
) STRICT;
--> statement-breakpoint
INSERT INTO `users`("id", "name", "balance", "created_at") SELECT "id", "name", "balance", "created_at" FROM `__old_users`;--> statement-breakpoint
DROP TABLE `__old_users`;
