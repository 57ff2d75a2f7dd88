/**
 * Prints a bearer token signed with the configured secret (JWT_SECRET, or the one generated beside
 * the SQLite database), for curl, the /docs page and load scripts:
 *   bun run token --user 42
 *   bun run token --admin --ttl 8h
 */
import { parseArgs } from "node:util";
import { resolveJwtSecret } from "../auth/secret.ts";
import { signToken } from "../auth/tokens.ts";
import { ConfigError, loadConfig } from "../config.ts";
import { createLogger } from "../logger.ts";

const usage = "usage: bun run token (--user <id> | --admin [--sub <name>]) [--ttl 1h|30m|7d|<seconds>]";
const units: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

function seconds(ttl: string): number {
  const match = /^([1-9][0-9]{0,6})([smhd]?)$/.exec(ttl);
  if (match === null) throw new Error(`--ttl: expected a duration such as 3600, 30m, 1h or 7d (got "${ttl}")`);
  const total = Number(match[1]) * (units[match[2] || "s"] as number);
  if (total > 366 * 86_400) throw new Error("--ttl: at most 366 days");
  return total;
}

export async function run(argv: string[]): Promise<void> {
  try {
    await printToken(argv);
  } catch (error) {
    console.error(error instanceof ConfigError ? error.message : `${(error as Error).message}\n${usage}`);
    process.exit(2);
  }
}

async function printToken(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      user: { type: "string" },
      admin: { type: "boolean" },
      sub: { type: "string" },
      ttl: { type: "string", default: "1h" },
    },
  });
  if ((values.user === undefined) === (values.admin === undefined))
    throw new Error("give exactly one of --user and --admin");
  if (values.user !== undefined && !/^[1-9][0-9]{0,15}$/.test(values.user)) {
    throw new Error(`--user: expected a user id (got "${values.user}")`);
  }
  const config = loadConfig();
  // Logs go to stderr so that stdout is the token alone: TOKEN=$(bun run --silent token --user 1)
  const secret = resolveJwtSecret(config, {
    ...createLogger("silent"),
    info: (msg, fields) => console.error(msg, fields ?? ""),
    warn: (msg, fields) => console.error(msg, fields ?? ""),
  });
  const claims =
    values.user !== undefined
      ? { sub: values.user, role: "user" as const }
      : { sub: values.sub ?? "admin", role: "admin" as const };
  console.log(await signToken(secret, claims, seconds(values.ttl)));
}

if (import.meta.main) await run(process.argv.slice(2));
