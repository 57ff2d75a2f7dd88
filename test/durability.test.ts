/**
 * The durability class a deployment runs is the one it is configured for (src/durability.ts): the
 * service started as `bun start` with no configuration commits with synchronous=FULL, and every
 * PostgreSQL connection flashcart opens reports the synchronous_commit it was given.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { spawnListening } from "../load/process.ts";
import { durabilitySettings } from "../src/durability.ts";
import { openPg } from "../src/store/pg/database.ts";
import { TEST_DATABASE_URL } from "./support/server.ts";

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

const synchronousLevel = { NORMAL: 1, FULL: 2 } as const;

/**
 * `bun start` in a fresh directory with `env` over an otherwise empty configuration; after SIGTERM,
 * the settings its database connection ran with (test/support/sqlite-probe.ts).
 */
async function servedSqliteSettings(
  env: Record<string, string>,
): Promise<{ synchronous: number; journalMode: string }> {
  const cwd = mkdtempSync(join(tmpdir(), "flashcart-durability-"));
  cleanups.push(() => rmSync(cwd, { recursive: true, force: true }));
  const probeFile = join(cwd, "probe.jsonl");
  const { proc, url } = await spawnListening(
    [
      process.execPath,
      "--preload",
      resolve(import.meta.dir, "support/sqlite-probe.ts"),
      resolve(import.meta.dir, "../src/main.ts"),
      "serve",
    ],
    {
      cwd,
      // Empty variables count as unset: whatever the test runner's environment holds, the defaults apply.
      env: {
        ...process.env,
        DATABASE_URL: "",
        SQLITE_SYNCHRONOUS: "",
        JWT_SECRET: "",
        PORT: "0",
        HOST: "127.0.0.1",
        LOG_LEVEL: "info",
        SQLITE_PROBE_FILE: probeFile,
        ...env,
      },
    },
  );
  cleanups.push(() => proc.kill("SIGKILL"));
  // One answer first: the "listening" line is logged just before the signal handlers are installed.
  expect((await fetch(`${url}/health`)).status).toBe(200);
  proc.kill("SIGTERM");
  expect(await proc.exited).toBe(0);
  const closed = readFileSync(probeFile, "utf8")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as { filename: string; synchronous: number; journalMode: string });
  const served = closed.filter((db) => db.filename.endsWith(join("data", "flashcart.db")));
  expect(served.length).toBe(1);
  const [{ synchronous, journalMode }] = served as [(typeof served)[number]];
  return { synchronous, journalMode };
}

describe("SQLite", () => {
  test("`bun start` with the default configuration commits durably: synchronous=FULL in WAL mode", async () => {
    expect(await servedSqliteSettings({})).toEqual({
      synchronous: synchronousLevel[durabilitySettings.durable.sqliteSynchronous],
      journalMode: "wal",
    });
  });

  test("SQLITE_SYNCHRONOUS=NORMAL runs the relaxed class", async () => {
    expect(await servedSqliteSettings({ SQLITE_SYNCHRONOUS: "NORMAL" })).toEqual({
      synchronous: synchronousLevel[durabilitySettings.relaxed.sqliteSynchronous],
      journalMode: "wal",
    });
  });
});

if (TEST_DATABASE_URL === "") {
  console.log("durability.test.ts: SHOW synchronous_commit not run: set TEST_DATABASE_URL=postgres://… to run it.");
}

// Not a skip: without a server there is nothing to run, and the line above says so.
describe.each(TEST_DATABASE_URL === "" ? [] : ["PostgreSQL"])("%s", () => {
  /** synchronous_commit as each of `connections` simultaneous connections of the pool reports it. */
  async function reported(synchronousCommit: "on" | "off" | undefined, connections = 3): Promise<string[]> {
    const db = await openPg({
      url: TEST_DATABASE_URL,
      schema: null,
      poolMax: connections,
      statementTimeoutMs: 10_000,
      ...(synchronousCommit === undefined ? {} : { synchronousCommit }),
    });
    cleanups.push(() => db.$client.end({ timeout: 5 }));
    const reserved = await Promise.all(Array.from({ length: connections }, () => db.$client.reserve()));
    try {
      return await Promise.all(
        reserved.map(
          async (connection) => (await connection`SHOW synchronous_commit`)[0]?.synchronous_commit as string,
        ),
      );
    } finally {
      for (const connection of reserved) connection.release();
    }
  }

  test("every connection reports the synchronous_commit it was opened with; on by default", async () => {
    expect(await reported(undefined)).toEqual(["on", "on", "on"]);
    expect(await reported(durabilitySettings.durable.pgSynchronousCommit)).toEqual(["on", "on", "on"]);
    expect(await reported(durabilitySettings.relaxed.pgSynchronousCommit)).toEqual(["off", "off", "off"]);
  });
});
