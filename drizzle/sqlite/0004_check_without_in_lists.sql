-- Hand-edited from drizzle-kit's rebuilds of `events` and `point_history` (SQLite cannot change a CHECK).
-- Their type CHECKs become comparisons joined by OR: an IN list of three or more constants made SQLite build
-- a temporary b-tree of them on every insert (see oneOf in src/store/sqlite/schema.ts). No table refers to
-- either, so each is renamed aside, created again under its own name (its CHECKs name it, not
-- `__new_…`), filled with the same rows and ids (event ids go on from the largest), and the old one
-- dropped with its index. STRICT by hand.
ALTER TABLE `events` RENAME TO `__old_events`;--> statement-breakpoint
CREATE TABLE `events` (
	`id` integer PRIMARY KEY NOT NULL,
	`type` text NOT NULL,
	`occurred_at` integer NOT NULL,
	`data` text NOT NULL,
	CONSTRAINT "events_type" CHECK("events"."type" = 'coupon.claimed' OR "events"."type" = 'coupon.sold_out' OR "events"."type" = 'order.paid' OR "events"."type" = 'order.cancelled' OR "events"."type" = 'points.charged')
) STRICT;
--> statement-breakpoint
INSERT INTO `events`("id", "type", "occurred_at", "data") SELECT "id", "type", "occurred_at", "data" FROM `__old_events`;--> statement-breakpoint
DROP TABLE `__old_events`;--> statement-breakpoint
ALTER TABLE `point_history` RENAME TO `__old_point_history`;--> statement-breakpoint
CREATE TABLE `point_history` (
	`id` integer PRIMARY KEY NOT NULL,
	`user_id` integer NOT NULL,
	`type` text NOT NULL,
	`amount` integer NOT NULL,
	`balance_after` integer NOT NULL,
	`order_id` integer,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`order_id`) REFERENCES `orders`(`id`) ON UPDATE no action ON DELETE no action,
	CONSTRAINT "point_history_type" CHECK("point_history"."type" = 'CHARGE' OR "point_history"."type" = 'USE' OR "point_history"."type" = 'REFUND'),
	CONSTRAINT "point_history_amount_positive" CHECK("point_history"."amount" > 0),
	CONSTRAINT "point_history_balance_after_non_negative" CHECK("point_history"."balance_after" >= 0),
	CONSTRAINT "point_history_order_matches_type" CHECK(("point_history"."type" = 'CHARGE') = ("point_history"."order_id" IS NULL))
) STRICT;
--> statement-breakpoint
INSERT INTO `point_history`("id", "user_id", "type", "amount", "balance_after", "order_id", "created_at") SELECT "id", "user_id", "type", "amount", "balance_after", "order_id", "created_at" FROM `__old_point_history`;--> statement-breakpoint
DROP TABLE `__old_point_history`;--> statement-breakpoint
CREATE INDEX `point_history_user_id_idx` ON `point_history` (`user_id`,`id`);
