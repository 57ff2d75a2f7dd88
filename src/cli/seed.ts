/**
 * Seeds a database for demos and load tests, like the original report's data.sql:
 *   bun run seed                         1,000 users
 *   bun run seed --users 5000 --points 10000 --products 100 --stock 1000 --coupons 1 --coupon-quantity 100
 * Uses the same configuration (DATABASE_URL) as the server and goes through the Store, so every
 * invariant (history rows for points, CHECKs) holds for seeded data too.
 */
import { parseArgs } from "node:util";
import { z } from "zod";
import { ConfigError, loadConfig } from "../config.ts";
import { limits } from "../domain/limits.ts";
import { openStore } from "../store/index.ts";

const count = (max: number) => z.coerce.number().int().min(0).max(max);

const optionsSchema = z.object({
  users: count(1_000_000).default(1000),
  points: count(limits.maxCharge).default(0),
  products: count(100_000).default(0),
  price: count(limits.maxPrice).min(1).default(1000),
  stock: count(limits.maxStock).default(1000),
  coupons: count(1000).default(0),
  "coupon-quantity": count(limits.maxCouponQuantity).min(1).default(100),
});

const usage = `usage: bun run seed [--users N] [--points N] [--products N] [--price WON] [--stock N] [--coupons N] [--coupon-quantity N]`;

function parseOptions(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: Object.fromEntries(Object.keys(optionsSchema.shape).map((name) => [name, { type: "string" as const }])),
  });
  return optionsSchema.parse(values);
}

export async function run(argv: string[]): Promise<void> {
  let options: z.infer<typeof optionsSchema>;
  try {
    options = parseOptions(argv);
  } catch (error) {
    const detail = error instanceof z.ZodError ? z.prettifyError(error) : String((error as Error).message);
    console.error(`${detail}\n${usage}`);
    process.exit(2);
  }
  try {
    await seed(options);
  } catch (error) {
    console.error(error instanceof ConfigError ? error.message : error);
    process.exit(1);
  }
}

async function seed(options: z.infer<typeof optionsSchema>): Promise<void> {
  const config = loadConfig();
  const store = await openStore(config);
  const now = Date.now();
  const summary = { users: [0, 0], products: [0, 0], coupons: [] as number[] };
  try {
    // Users are created in concurrent chunks: SQLite group-commits them, PostgreSQL spreads them over its pool.
    for (let first = 1; first <= options.users; first += 500) {
      const chunk = Array.from({ length: Math.min(500, options.users - first + 1) }, (_, k) => first + k);
      const created = await Promise.all(
        chunk.map(async (i) => {
          const user = await store.createUser(`user${i}`, now);
          if (options.points > 0) {
            await store.chargePoints({ userId: user.id, amount: options.points, now, idempotency: null });
          }
          return user.id;
        }),
      );
      if (first === 1) summary.users[0] = Math.min(...created);
      summary.users[1] = Math.max(summary.users[1] ?? 0, ...created);
    }
    for (let i = 1; i <= options.products; i++) {
      const product = await store.createProduct(
        { name: `product${i}`, price: options.price, stock: options.stock },
        now,
      );
      if (i === 1) summary.products[0] = product.id;
      summary.products[1] = product.id;
    }
    for (let i = 1; i <= options.coupons; i++) {
      const coupon = await store.createCoupon(
        {
          name: `drop${i}`,
          discountType: "FIXED",
          discountValue: 1000,
          maxDiscount: null,
          minOrderAmount: 0,
          issueStartsAt: null,
          issueEndsAt: null,
          validDays: limits.defaultValidDays,
          totalQuantity: options["coupon-quantity"],
        },
        now,
      );
      summary.coupons.push(coupon.id);
    }
  } finally {
    await store.close();
  }
  console.log(JSON.stringify({ seeded: summary }));
}

if (import.meta.main) await run(process.argv.slice(2));
