import { randomBytes } from "node:crypto";
import { chmodSync, linkSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { Config } from "../config.ts";
import type { Logger } from "../logger.ts";
import { MIN_SECRET_BYTES } from "./tokens.ts";

/** Where the generated secret of a local database lives: beside the database file. */
export function secretFileOf(databasePath: string): string {
  return `${databasePath}.jwt-secret`;
}

/**
 * The HS256 secret. `JWT_SECRET` when set. Otherwise, for zero-configuration local use with a SQLite
 * file, a random secret is generated once and kept beside the database (mode 0600), so tokens made
 * by `bun run token` keep working across restarts. An in-memory database gets a secret that lives
 * as long as the process.
 */
export function resolveJwtSecret(config: Pick<Config, "jwtSecret" | "database">, logger: Logger): Uint8Array {
  if (config.jwtSecret !== null) return new TextEncoder().encode(config.jwtSecret);
  if (config.database.kind === "postgres") throw new Error("JWT_SECRET is required with PostgreSQL");
  if (config.database.path === ":memory:") {
    logger.warn("JWT_SECRET is not set: using a random secret for this process only");
    return new TextEncoder().encode(randomBytes(48).toString("base64url"));
  }
  const file = secretFileOf(config.database.path);
  const existing = readSecretFile(file);
  if (existing !== null) return existing;
  mkdirSync(dirname(file), { recursive: true });
  // Written whole to a private temporary file, then linked into place: link() fails if the secret
  // exists, so processes starting together agree on one secret and never read a half-written file.
  const draft = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  writeFileSync(draft, `${randomBytes(48).toString("base64url")}\n`, { mode: 0o600 });
  try {
    linkSync(draft, file);
    logger.info("JWT_SECRET is not set: generated a secret for this database", { file });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  } finally {
    rmSync(draft, { force: true });
  }
  const created = readSecretFile(file);
  if (created === null) throw new Error(`could not read the JWT secret at ${file}`);
  return created;
}

function readSecretFile(file: string): Uint8Array | null {
  let text: string;
  try {
    text = readFileSync(file, "utf8").trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
  if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
  const bytes = new TextEncoder().encode(text);
  if (bytes.length < MIN_SECRET_BYTES)
    throw new Error(`the JWT secret in ${file} is shorter than ${MIN_SECRET_BYTES} bytes`);
  return bytes;
}
