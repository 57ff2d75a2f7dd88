-- The transactional outbox (issue #13). STRICT by hand.
CREATE TABLE `event_sinks` (
	`sink` text PRIMARY KEY NOT NULL,
	`delivered_id` integer DEFAULT 0 NOT NULL
) STRICT;
--> statement-breakpoint
CREATE TABLE `events` (
	`id` integer PRIMARY KEY NOT NULL,
	`type` text NOT NULL,
	`occurred_at` integer NOT NULL,
	`data` text NOT NULL,
	CONSTRAINT "events_type" CHECK("events"."type" IN ('coupon.claimed', 'coupon.sold_out', 'order.paid', 'order.cancelled', 'points.charged'))
) STRICT;
