-- Hand-edited: drizzle-kit writes REFERENCES "public"."table"; the schema prefix is removed so that
-- foreign keys follow the search_path, and flashcart can live in a schema of its own (?schema=).
CREATE TABLE "coupons" (
	"id" integer PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "coupons_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1),
	"name" text NOT NULL,
	"discount_type" text NOT NULL,
	"discount_value" bigint NOT NULL,
	"max_discount" bigint,
	"min_order_amount" bigint DEFAULT 0 NOT NULL,
	"issue_starts_at" bigint,
	"issue_ends_at" bigint,
	"valid_days" integer NOT NULL,
	"total_quantity" integer NOT NULL,
	"issued_quantity" integer DEFAULT 0 NOT NULL,
	"version" integer DEFAULT 0 NOT NULL,
	"created_at" bigint NOT NULL,
	CONSTRAINT "coupons_discount_type" CHECK ("coupons"."discount_type" IN ('FIXED', 'PERCENT')),
	CONSTRAINT "coupons_discount_value" CHECK ("coupons"."discount_value" > 0 AND ("coupons"."discount_type" <> 'PERCENT' OR "coupons"."discount_value" <= 100)),
	CONSTRAINT "coupons_issued_within_total" CHECK ("coupons"."issued_quantity" >= 0 AND "coupons"."issued_quantity" <= "coupons"."total_quantity"),
	CONSTRAINT "coupons_valid_days_positive" CHECK ("coupons"."valid_days" > 0)
);
--> statement-breakpoint
CREATE TABLE "idempotency_keys" (
	"user_id" integer NOT NULL,
	"key" text NOT NULL,
	"fingerprint" text NOT NULL,
	"status_code" integer NOT NULL,
	"response_body" text NOT NULL,
	"created_at" bigint NOT NULL,
	CONSTRAINT "idempotency_keys_user_id_key_pk" PRIMARY KEY("user_id","key")
);
--> statement-breakpoint
CREATE TABLE "order_items" (
	"order_id" integer NOT NULL,
	"product_id" integer NOT NULL,
	"quantity" integer NOT NULL,
	"unit_price" bigint NOT NULL,
	CONSTRAINT "order_items_order_id_product_id_pk" PRIMARY KEY("order_id","product_id"),
	CONSTRAINT "order_items_quantity" CHECK ("order_items"."quantity" BETWEEN 1 AND 100),
	CONSTRAINT "order_items_unit_price_positive" CHECK ("order_items"."unit_price" > 0)
);
--> statement-breakpoint
CREATE TABLE "orders" (
	"id" integer PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "orders_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1),
	"user_id" integer NOT NULL,
	"status" text NOT NULL,
	"total_amount" bigint NOT NULL,
	"discount_amount" bigint NOT NULL,
	"paid_amount" bigint NOT NULL,
	"user_coupon_id" integer,
	"created_at" bigint NOT NULL,
	"cancelled_at" bigint,
	CONSTRAINT "orders_status" CHECK ("orders"."status" IN ('PAID', 'CANCELLED')),
	CONSTRAINT "orders_amounts" CHECK ("orders"."total_amount" > 0 AND "orders"."discount_amount" >= 0 AND "orders"."discount_amount" <= "orders"."total_amount" AND "orders"."paid_amount" = "orders"."total_amount" - "orders"."discount_amount"),
	CONSTRAINT "orders_cancelled_at_matches_status" CHECK (("orders"."status" = 'CANCELLED') = ("orders"."cancelled_at" IS NOT NULL))
);
--> statement-breakpoint
CREATE TABLE "point_history" (
	"id" integer PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "point_history_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1),
	"user_id" integer NOT NULL,
	"type" text NOT NULL,
	"amount" bigint NOT NULL,
	"balance_after" bigint NOT NULL,
	"order_id" integer,
	"created_at" bigint NOT NULL,
	CONSTRAINT "point_history_type" CHECK ("point_history"."type" IN ('CHARGE', 'USE', 'REFUND')),
	CONSTRAINT "point_history_amount_positive" CHECK ("point_history"."amount" > 0),
	CONSTRAINT "point_history_balance_after_non_negative" CHECK ("point_history"."balance_after" >= 0),
	CONSTRAINT "point_history_order_matches_type" CHECK (("point_history"."type" = 'CHARGE') = ("point_history"."order_id" IS NULL))
);
--> statement-breakpoint
CREATE TABLE "products" (
	"id" integer PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "products_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1),
	"name" text NOT NULL,
	"price" bigint NOT NULL,
	"stock" integer NOT NULL,
	"created_at" bigint NOT NULL,
	CONSTRAINT "products_price_positive" CHECK ("products"."price" > 0),
	CONSTRAINT "products_stock_non_negative" CHECK ("products"."stock" >= 0)
);
--> statement-breakpoint
CREATE TABLE "user_coupons" (
	"id" integer PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "user_coupons_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1),
	"user_id" integer NOT NULL,
	"coupon_id" integer NOT NULL,
	"status" text NOT NULL,
	"issued_at" bigint NOT NULL,
	"expires_at" bigint NOT NULL,
	"used_at" bigint,
	CONSTRAINT "user_coupons_status" CHECK ("user_coupons"."status" IN ('AVAILABLE', 'USED')),
	CONSTRAINT "user_coupons_used_at_matches_status" CHECK (("user_coupons"."status" = 'USED') = ("user_coupons"."used_at" IS NOT NULL))
);
--> statement-breakpoint
CREATE TABLE "users" (
	"id" integer PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "users_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1),
	"name" text NOT NULL,
	"balance" bigint DEFAULT 0 NOT NULL,
	"created_at" bigint NOT NULL,
	CONSTRAINT "users_balance_non_negative" CHECK ("users"."balance" >= 0),
	CONSTRAINT "users_name_length" CHECK (char_length("users"."name") BETWEEN 1 AND 100)
);
--> statement-breakpoint
ALTER TABLE "idempotency_keys" ADD CONSTRAINT "idempotency_keys_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "order_items" ADD CONSTRAINT "order_items_order_id_orders_id_fk" FOREIGN KEY ("order_id") REFERENCES "orders"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "order_items" ADD CONSTRAINT "order_items_product_id_products_id_fk" FOREIGN KEY ("product_id") REFERENCES "products"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "orders" ADD CONSTRAINT "orders_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "orders" ADD CONSTRAINT "orders_user_coupon_id_user_coupons_id_fk" FOREIGN KEY ("user_coupon_id") REFERENCES "user_coupons"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "point_history" ADD CONSTRAINT "point_history_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "point_history" ADD CONSTRAINT "point_history_order_id_orders_id_fk" FOREIGN KEY ("order_id") REFERENCES "orders"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "user_coupons" ADD CONSTRAINT "user_coupons_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "user_coupons" ADD CONSTRAINT "user_coupons_coupon_id_coupons_id_fk" FOREIGN KEY ("coupon_id") REFERENCES "coupons"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "idempotency_keys_created_at_idx" ON "idempotency_keys" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "orders_user_id_idx" ON "orders" USING btree ("user_id","id");--> statement-breakpoint
CREATE INDEX "orders_status_created_at_idx" ON "orders" USING btree ("status","created_at");--> statement-breakpoint
CREATE UNIQUE INDEX "orders_paid_user_coupon_unique" ON "orders" USING btree ("user_coupon_id") WHERE "orders"."status" = 'PAID' AND "orders"."user_coupon_id" IS NOT NULL;--> statement-breakpoint
CREATE INDEX "point_history_user_id_idx" ON "point_history" USING btree ("user_id","id");--> statement-breakpoint
CREATE UNIQUE INDEX "user_coupons_user_coupon_unique" ON "user_coupons" USING btree ("user_id","coupon_id");