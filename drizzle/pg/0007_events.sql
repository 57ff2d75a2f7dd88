CREATE TABLE "event_ids" (
	"id" integer PRIMARY KEY DEFAULT 1 NOT NULL,
	"last_id" bigint DEFAULT 0 NOT NULL,
	CONSTRAINT "event_ids_one_row" CHECK ("event_ids"."id" = 1)
);
--> statement-breakpoint
CREATE TABLE "event_sinks" (
	"sink" text PRIMARY KEY NOT NULL,
	"delivered_id" bigint DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE TABLE "events" (
	"seq" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "events_seq_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"id" bigint,
	"type" text NOT NULL,
	"occurred_at" bigint NOT NULL,
	"data" text NOT NULL,
	CONSTRAINT "events_type" CHECK ("events"."type" IN ('coupon.claimed', 'coupon.sold_out', 'order.paid', 'order.cancelled', 'points.charged'))
);
--> statement-breakpoint
CREATE UNIQUE INDEX "events_id_unique" ON "events" USING btree ("id");