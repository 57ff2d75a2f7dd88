-- Hand-edited: drizzle-kit cannot express STRICT tables, so every CREATE TABLE below ends in STRICT by hand.
CREATE TABLE `coupons` (
	`id` integer PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`discount_type` text NOT NULL,
	`discount_value` integer NOT NULL,
	`max_discount` integer,
	`min_order_amount` integer DEFAULT 0 NOT NULL,
	`issue_starts_at` integer,
	`issue_ends_at` integer,
	`valid_days` integer NOT NULL,
	`total_quantity` integer NOT NULL,
	`issued_quantity` integer DEFAULT 0 NOT NULL,
	`created_at` integer NOT NULL,
	CONSTRAINT "coupons_discount_type" CHECK("coupons"."discount_type" IN ('FIXED', 'PERCENT')),
	CONSTRAINT "coupons_discount_value" CHECK("coupons"."discount_value" > 0 AND ("coupons"."discount_type" <> 'PERCENT' OR "coupons"."discount_value" <= 100)),
	CONSTRAINT "coupons_issued_within_total" CHECK("coupons"."issued_quantity" >= 0 AND "coupons"."issued_quantity" <= "coupons"."total_quantity"),
	CONSTRAINT "coupons_valid_days_positive" CHECK("coupons"."valid_days" > 0)
) STRICT;
--> statement-breakpoint
CREATE TABLE `idempotency_keys` (
	`user_id` integer NOT NULL,
	`key` text NOT NULL,
	`fingerprint` text NOT NULL,
	`status_code` integer NOT NULL,
	`response_body` text NOT NULL,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`user_id`, `key`),
	FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE no action
) STRICT;
--> statement-breakpoint
CREATE INDEX `idempotency_keys_created_at_idx` ON `idempotency_keys` (`created_at`);--> statement-breakpoint
CREATE TABLE `order_items` (
	`order_id` integer NOT NULL,
	`product_id` integer NOT NULL,
	`quantity` integer NOT NULL,
	`unit_price` integer NOT NULL,
	PRIMARY KEY(`order_id`, `product_id`),
	FOREIGN KEY (`order_id`) REFERENCES `orders`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`product_id`) REFERENCES `products`(`id`) ON UPDATE no action ON DELETE no action,
	CONSTRAINT "order_items_quantity" CHECK("order_items"."quantity" BETWEEN 1 AND 100),
	CONSTRAINT "order_items_unit_price_positive" CHECK("order_items"."unit_price" > 0)
) STRICT;
--> statement-breakpoint
CREATE INDEX `order_items_product_id_idx` ON `order_items` (`product_id`);--> statement-breakpoint
CREATE TABLE `orders` (
	`id` integer PRIMARY KEY NOT NULL,
	`user_id` integer NOT NULL,
	`status` text NOT NULL,
	`total_amount` integer NOT NULL,
	`discount_amount` integer NOT NULL,
	`paid_amount` integer NOT NULL,
	`user_coupon_id` integer,
	`created_at` integer NOT NULL,
	`cancelled_at` integer,
	FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`user_coupon_id`) REFERENCES `user_coupons`(`id`) ON UPDATE no action ON DELETE no action,
	CONSTRAINT "orders_status" CHECK("orders"."status" IN ('PAID', 'CANCELLED')),
	CONSTRAINT "orders_amounts" CHECK("orders"."total_amount" > 0 AND "orders"."discount_amount" >= 0 AND "orders"."discount_amount" <= "orders"."total_amount" AND "orders"."paid_amount" = "orders"."total_amount" - "orders"."discount_amount"),
	CONSTRAINT "orders_cancelled_at_matches_status" CHECK(("orders"."status" = 'CANCELLED') = ("orders"."cancelled_at" IS NOT NULL))
) STRICT;
--> statement-breakpoint
CREATE INDEX `orders_user_id_idx` ON `orders` (`user_id`,`id`);--> statement-breakpoint
CREATE INDEX `orders_status_created_at_idx` ON `orders` (`status`,`created_at`);--> statement-breakpoint
CREATE UNIQUE INDEX `orders_paid_user_coupon_unique` ON `orders` (`user_coupon_id`) WHERE "orders"."status" = 'PAID' AND "orders"."user_coupon_id" IS NOT NULL;--> statement-breakpoint
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
	CONSTRAINT "point_history_type" CHECK("point_history"."type" IN ('CHARGE', 'USE', 'REFUND')),
	CONSTRAINT "point_history_amount_positive" CHECK("point_history"."amount" > 0),
	CONSTRAINT "point_history_balance_after_non_negative" CHECK("point_history"."balance_after" >= 0),
	CONSTRAINT "point_history_order_matches_type" CHECK(("point_history"."type" = 'CHARGE') = ("point_history"."order_id" IS NULL))
) STRICT;
--> statement-breakpoint
CREATE INDEX `point_history_user_id_idx` ON `point_history` (`user_id`,`id`);--> statement-breakpoint
CREATE TABLE `products` (
	`id` integer PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`price` integer NOT NULL,
	`stock` integer NOT NULL,
	`created_at` integer NOT NULL,
	CONSTRAINT "products_price_positive" CHECK("products"."price" > 0),
	CONSTRAINT "products_stock_non_negative" CHECK("products"."stock" >= 0)
) STRICT;
--> statement-breakpoint
CREATE TABLE `user_coupons` (
	`id` integer PRIMARY KEY NOT NULL,
	`user_id` integer NOT NULL,
	`coupon_id` integer NOT NULL,
	`status` text NOT NULL,
	`issued_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	`used_at` integer,
	FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`coupon_id`) REFERENCES `coupons`(`id`) ON UPDATE no action ON DELETE no action,
	CONSTRAINT "user_coupons_status" CHECK("user_coupons"."status" IN ('AVAILABLE', 'USED')),
	CONSTRAINT "user_coupons_used_at_matches_status" CHECK(("user_coupons"."status" = 'USED') = ("user_coupons"."used_at" IS NOT NULL))
) STRICT;
--> statement-breakpoint
CREATE UNIQUE INDEX `user_coupons_user_coupon_unique` ON `user_coupons` (`user_id`,`coupon_id`);--> statement-breakpoint
CREATE TABLE `users` (
	`id` integer PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`balance` integer DEFAULT 0 NOT NULL,
	`created_at` integer NOT NULL,
	CONSTRAINT "users_balance_non_negative" CHECK("users"."balance" >= 0),
	CONSTRAINT "users_name_length" CHECK(length("users"."name") BETWEEN 1 AND 100)
) STRICT;
