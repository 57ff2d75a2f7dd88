/**
 * PostgreSQL's own ceiling for a variant's coupon claim, and for an order. pgbench (shipped with
 * PostgreSQL) runs the statements the adapter sends for one claim (per strategy) or one order (the
 * same for every strategy), with nothing in between (no HTTP, no Bun), against the same database and
 * users (a claim on a fresh drop of the same supply), for the same duration, with as many clients as
 * the service has pool connections (the most it can have in flight in PostgreSQL). A variant's
 * requests/s over this tps is its adapter efficiency.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type postgres from "postgres";
import type { CouponStrategy } from "../src/store/pg/coupon-strategies.ts";
import { sessionSettings } from "../src/store/pg/database.ts";

/** The pgbench script of one claim by a random user, as each strategy's adapter sends it. */
export function claimScript(strategy: CouponStrategy): string {
  const user = "\\set u random(1, :users)";
  const insert =
    "INSERT INTO user_coupons (user_id, coupon_id, status, issued_at, expires_at) VALUES (:u, :coupon, 'AVAILABLE', 0, 1)";
  // Losers are answered by a lock-free read; a claim that may win opens a transaction (closed by the caller's \\endif).
  const mayWinThenBegin = [
    user,
    "SELECT (EXISTS (SELECT 1 FROM user_coupons WHERE user_id = :u AND coupon_id = :coupon))::int AS holds,",
    "  (issued_quantity >= total_quantity)::int AS sold_out FROM coupons WHERE id = :coupon \\gset",
    "\\if :holds",
    "\\elif :sold_out",
    "\\else",
    "BEGIN;",
  ];
  switch (strategy) {
    case "atomic":
      // One call in autocommit (drizzle/pg/0001_take_coupon.sql).
      return [user, "SELECT take_coupon(:u, :coupon, 0, 1);"].join("\n");
    case "sharded":
      return [user, "SELECT take_coupon_sharded(:u, :coupon, 0, 1);"].join("\n");
    case "pessimistic":
      return [
        ...mayWinThenBegin,
        "SELECT issued_quantity AS issued, total_quantity AS total FROM coupons WHERE id = :coupon FOR UPDATE \\gset",
        "SELECT count(*) AS held FROM user_coupons WHERE user_id = :u AND coupon_id = :coupon \\gset",
        "\\if :held > 0 or :issued >= :total",
        "ROLLBACK;",
        "\\else",
        `${insert} ON CONFLICT (user_id, coupon_id) DO NOTHING;`,
        "UPDATE coupons SET issued_quantity = :issued + 1 WHERE id = :coupon;",
        "COMMIT;",
        "\\endif",
        "\\endif",
      ].join("\n");
    case "optimistic":
      // One compare-and-set attempt; the adapter retries a lost one, which only adds to its cost.
      return [
        ...mayWinThenBegin,
        `WITH held AS (${insert} ON CONFLICT (user_id, coupon_id) DO NOTHING RETURNING 1) SELECT count(*) AS inserted FROM held \\gset`,
        "SELECT issued_quantity AS issued, total_quantity AS total, version FROM coupons WHERE id = :coupon \\gset",
        "\\if :inserted = 0 or :issued >= :total",
        "ROLLBACK;",
        "\\else",
        "WITH won AS (UPDATE coupons SET issued_quantity = :issued + 1, version = :version + 1 WHERE id = :coupon AND version = :version RETURNING 1) SELECT count(*) AS won FROM won \\gset",
        "\\if :won",
        "COMMIT;",
        "\\else",
        "ROLLBACK;",
        "\\endif",
        "\\endif",
        "\\endif",
      ].join("\n");
    case "redis":
      // What reaches PostgreSQL once Redis has reserved the slot (losers never do).
      return [
        user,
        "BEGIN;",
        `WITH held AS (${insert} ON CONFLICT (user_id, coupon_id) DO NOTHING RETURNING 1) SELECT count(*) AS inserted FROM held \\gset`,
        "WITH taken AS (UPDATE coupons SET issued_quantity = issued_quantity + 1 WHERE id = :coupon AND issued_quantity < total_quantity AND :inserted = 1 RETURNING 1) SELECT count(*) AS taken FROM taken \\gset",
        "\\if :taken",
        "COMMIT;",
        "\\else",
        "ROLLBACK;",
        "\\endif",
      ].join("\n");
  }
}

/**
 * The pgbench script of one order of one unit of a random product by a random user, paid in points:
 * the two statements src/store/pg/orders.ts sends (the order's facts, then place_order), in
 * autocommit. The facts' columns are summed into one number so that none of them is planned away.
 */
export function orderScript(): string {
  return [
    "\\set u random(1, :users)",
    "\\set p random(1, :products)",
    "SELECT order_id, (user_exists::int + coalesce(length(stored::text), 0) + length(prices::text) + coalesce(length(held::text), 0)) AS facts FROM (SELECT",
    "  EXISTS (SELECT 1 FROM users WHERE id = :u) AS user_exists,",
    "  (SELECT json_build_object('fingerprint', fingerprint, 'statusCode', status_code, 'responseBody', response_body)",
    "     FROM idempotency_keys WHERE user_id = :u AND key = NULL) AS stored,",
    "  (SELECT json_agg(p.price ORDER BY asked.position)",
    "     FROM unnest(ARRAY[:p]::int[]) WITH ORDINALITY AS asked(id, position) LEFT JOIN products p ON p.id = asked.id) AS prices,",
    "  (SELECT json_build_object('ownerId', uc.user_id, 'status', uc.status, 'expiresAt', uc.expires_at,",
    "          'discountType', c.discount_type, 'discountValue', c.discount_value, 'maxDiscount', c.max_discount, 'minOrderAmount', c.min_order_amount)",
    "     FROM user_coupons uc JOIN coupons c ON c.id = uc.coupon_id WHERE uc.id = NULL) AS held,",
    "  nextval(pg_get_serial_sequence('orders', 'id'))::int AS order_id) AS f \\gset",
    "SELECT place_order(:order_id, :u, ARRAY[:p]::int[], ARRAY[1]::int[], ARRAY[:price]::bigint[], NULL::int, :price, 0, :price, 0, NULL::text, NULL::text, NULL::int, NULL::text);",
  ].join("\n");
}

/** The tps line of pgbench's report ("tps = 1035.109278 (without initial connection time)"). */
export function parseTps(output: string): number | null {
  const match = /^tps = ([0-9.]+) \(without initial connection time\)$/m.exec(output);
  return match === null ? null : Number(match[1]);
}

/** pgbench on PATH, or beside the server's other programs; null when neither has it. */
export function findPgbench(): string | null {
  const onPath = Bun.which("pgbench");
  if (onPath !== null) return onPath;
  const pgConfig = Bun.which("pg_config");
  if (pgConfig === null) return null;
  const bindir = Bun.spawnSync([pgConfig, "--bindir"]).stdout.toString().trim();
  const candidate = join(bindir, "pgbench");
  return existsSync(candidate) ? candidate : null;
}

export type Ceiling = { tps: number } | { missing: string };

export interface CeilingRun {
  /** postgres://… of the database, without `?schema=`. */
  url: string;
  schema: string;
  /** Open on that schema: the fresh drop is created with it. */
  sql: postgres.Sql;
  /** A claim with this strategy on a fresh drop of `supply`; or an order of one of `products` (ids 1…n) at `price`. */
  of: { claim: CouponStrategy; supply: number } | { order: { products: number; price: number } };
  users: number;
  clients: number;
  seconds: number;
  synchronousCommit: "on" | "off";
}

export async function postgresCeiling(run: CeilingRun): Promise<Ceiling> {
  const pgbench = findPgbench();
  if (pgbench === null) return { missing: "pgbench not installed" };
  let script: { name: string; text: string; variables: Record<string, number> };
  if ("claim" in run.of) {
    const [drop] = await run.sql<{ id: number }[]>`
      INSERT INTO coupons (name, discount_type, discount_value, min_order_amount, valid_days, total_quantity, issued_quantity, created_at)
      VALUES ('pgbench', 'FIXED', 1000, 0, 30, ${run.of.supply}, 0, 0) RETURNING id`;
    if (drop === undefined) throw new Error("could not create the pgbench drop");
    script = { name: `claim-${run.of.claim}`, text: claimScript(run.of.claim), variables: { coupon: drop.id } };
  } else {
    script = { name: "order", text: orderScript(), variables: { ...run.of.order } };
  }
  const workDir = mkdtempSync(join(tmpdir(), "flashcart-pgbench-"));
  const file = join(workDir, `${script.name}.sql`);
  await Bun.write(file, `${script.text}\n`);
  const variables = Object.entries({ users: run.users, ...script.variables }).flatMap(([name, value]) => [
    "-D",
    `${name}=${value}`,
  ]);
  const url = new URL(run.url);
  const result = Bun.spawnSync(
    [
      pgbench,
      ...["-n", "-M", "prepared", "-c", String(run.clients), "-j", "2", "-T", String(run.seconds)],
      ...["-f", file, ...variables],
      ...["-h", url.hostname, "-p", url.port || "5432", "-U", decodeURIComponent(url.username || "postgres")],
      decodeURIComponent(url.pathname.slice(1)),
    ],
    {
      env: {
        ...process.env,
        PGPASSWORD: decodeURIComponent(url.password),
        PGOPTIONS: Object.entries({ search_path: run.schema, ...sessionSettings(run.synchronousCommit) })
          .map(([name, value]) => `-c ${name}=${value}`)
          .join(" "),
      },
      stdout: "pipe",
      stderr: "pipe",
    },
  );
  rmSync(workDir, { recursive: true, force: true });
  const output = result.stdout.toString();
  const tps = parseTps(output);
  if (result.exitCode !== 0 || tps === null) {
    throw new Error(`pgbench failed (${result.exitCode}): ${result.stderr.toString()}${output}`);
  }
  return { tps };
}
