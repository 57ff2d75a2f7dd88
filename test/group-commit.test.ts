/** Group commit keeps the semantics of one transaction per write while sharing the commit. */
import { Database } from "bun:sqlite";
import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Unavailable } from "../src/domain/errors.ts";
import { openSqlite } from "../src/store/sqlite/database.ts";
import { GroupCommit } from "../src/store/sqlite/group-commit.ts";

/** What a test opened: closed and removed after it, whether it passed or failed. */
const opened: { close(): void }[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const db of opened.splice(0)) db.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function database(path: string, options?: { strict?: boolean; readonly?: boolean }): Database {
  const db = new Database(path, options);
  opened.push(db);
  return db;
}

function temporaryDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "flashcart-gc-"));
  dirs.push(dir);
  return dir;
}

function setup(path = ":memory:") {
  const client = database(path, { strict: true });
  client.run("PRAGMA journal_mode = WAL");
  client.run("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL CHECK (v >= 0)) STRICT");
  client.run("CREATE TABLE child (id INTEGER PRIMARY KEY, t_id INTEGER NOT NULL REFERENCES t(id)) STRICT");
  const insert = client.prepare("INSERT INTO t (v) VALUES (?) RETURNING id");
  const rows = () =>
    client
      .query("SELECT v FROM t ORDER BY id")
      .values()
      .map((r) => r[0]);
  return { client, insert, rows, commits: new GroupCommit(client, { lockWaitMs: 1000 }) };
}

test("units of one turn share a transaction; a failing unit is rolled back alone", async () => {
  const dir = temporaryDir();
  const { client, insert, rows, commits } = setup(join(dir, "gc.db"));
  const reader = database(join(dir, "gc.db"), { readonly: true });
  const visibleToOthers = () => reader.query("SELECT count(*) AS n FROM t").get();
  let seenByReaderDuringBatch: unknown;
  const results = await Promise.allSettled([
    commits.run(() => (insert.get(1) as { id: number }).id),
    commits.run(() => {
      insert.get(2);
      insert.get(-1); // CHECK fails: the insert of 2 above must vanish too
    }),
    commits.run(() => {
      seenByReaderDuringBatch = visibleToOthers();
      return (insert.get(3) as { id: number }).id;
    }),
  ]);
  expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
  expect((results[1] as PromiseRejectedResult).reason.code).toBe("SQLITE_CONSTRAINT_CHECK");
  // Unit 1 had run but was not committed yet when unit 3 ran: one transaction for the batch.
  expect(seenByReaderDuringBatch).toEqual({ n: 0 });
  expect(rows()).toEqual([1, 3]);
  expect(visibleToOthers()).toEqual({ n: 2 });
  expect(client.inTransaction).toBe(false);
});

test("nothing resolves before COMMIT; a failed COMMIT rejects the whole batch and keeps nothing", async () => {
  const { client, insert, rows, commits } = setup();
  client.run("PRAGMA foreign_keys = ON");
  client.run("PRAGMA defer_foreign_keys = ON"); // the orphan below is only detected at COMMIT
  let resolvedEarly = false;
  const batch = Promise.allSettled([
    commits
      .run(() => insert.get(7))
      .then((v) => {
        resolvedEarly = client.inTransaction;
        return v;
      }),
    commits.run(() => client.run("INSERT INTO child (t_id) VALUES (999)")),
  ]);
  const results = await batch;
  expect(results.map((r) => r.status)).toEqual(["rejected", "rejected"]);
  expect(resolvedEarly).toBe(false);
  expect(rows()).toEqual([]);
  expect(client.inTransaction).toBe(false);

  // The queue keeps working after a failed batch.
  expect(await commits.run(() => (insert.get(8) as { id: number }).id)).toBeGreaterThan(0);
  expect(rows()).toEqual([8]);
});

test("units run in arrival order, across batches larger than the batch cap", async () => {
  const client = database(":memory:", { strict: true });
  client.run("CREATE TABLE log (n INTEGER NOT NULL) STRICT");
  const add = client.prepare("INSERT INTO log (n) VALUES (?)");
  const commits = new GroupCommit(client, { lockWaitMs: 1000, maxBatch: 4 });
  await Promise.all(Array.from({ length: 10 }, (_, n) => commits.run(() => add.run(n))));
  expect(
    client
      .query("SELECT n FROM log ORDER BY rowid")
      .values()
      .map((r) => r[0]),
  ).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
});

test("a batch commits once its units have run for the time budget, in order, and the loop gets a turn before the next", async () => {
  const { insert, rows, commits } = setup();
  const busyFor = (ms: number) => {
    const until = performance.now() + ms;
    while (performance.now() < until) {}
  };
  let batchesWhenLoopRan = -1;
  // Each unit works 2.5 ms against a 4 ms budget: at most two units a batch.
  const units = Array.from({ length: 10 }, (_, v) =>
    commits.run(() => {
      busyFor(2.5);
      return insert.get(v);
    }),
  );
  setTimeout(() => {
    batchesWhenLoopRan = commits.committedBatches;
  }, 0);
  await Promise.all(units);
  expect(rows()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  expect(commits.committedBatches).toBeGreaterThanOrEqual(5);
  // The timer ran between two batches, not after all of them.
  expect(batchesWhenLoopRan).toBeGreaterThanOrEqual(1);
  expect(batchesWhenLoopRan).toBeLessThan(commits.committedBatches);
});

test("while another connection holds the write lock the loop runs on; a write waits, is refused with 503 at its bound, and the next commits once the lock is free", async () => {
  const dir = temporaryDir();
  const path = join(dir, "gc.db");
  const { client, insert, rows } = setup(path);
  const commits = new GroupCommit(client, { lockWaitMs: 300 });
  const holder = database(path);
  holder.run("BEGIN IMMEDIATE");

  let settled = false;
  const refused = commits
    .run(() => insert.get(1))
    .finally(() => {
      settled = true;
    });
  // Timers fire and reads answer while the write waits: nothing blocks the event loop.
  await Bun.sleep(20);
  expect(rows()).toEqual([]);
  expect(settled).toBe(false);
  const reason = await refused.then(
    () => null,
    (error: unknown) => error,
  );
  expect(reason).toBeInstanceOf(Unavailable);
  expect((reason as Unavailable).code).toBe("SERVICE_UNAVAILABLE");
  expect(commits.lastFault).toBe(reason as Unavailable);

  const waiting = commits.run(() => (insert.get(2) as { id: number }).id);
  await Bun.sleep(20);
  holder.run("ROLLBACK");
  expect(await waiting).toBeGreaterThan(0);
  expect(rows()).toEqual([2]);
  expect(commits.lastFault).toBeNull();
});

test("settled() resolves once every queued write has committed or been refused", async () => {
  const dir = temporaryDir();
  const path = join(dir, "gc.db");
  const { client, insert, rows } = setup(path);
  const commits = new GroupCommit(client, { lockWaitMs: 5000 });
  const holder = database(path);
  holder.run("BEGIN IMMEDIATE");
  const writes = Promise.all([commits.run(() => insert.get(1)), commits.run(() => insert.get(2))]);
  let drained = false;
  const settled = commits.settled().then(() => {
    drained = true;
  });
  await Bun.sleep(20);
  expect(drained).toBe(false);
  holder.run("COMMIT");
  await settled;
  expect(rows()).toEqual([1, 2]);
  await writes;
});

/** SQLite's temporary files this process has open: unnamed (O_TMPFILE, "/var/tmp/#123"), or etilqs_… unlinked. */
function openTemporaryFiles(): string[] {
  return readdirSync("/proc/self/fd")
    .map((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        return ""; // closed meanwhile (the readdir's own descriptor)
      }
    })
    .filter((target) => /(\/#\d+|etilqs_\w+) \(deleted\)$/.test(target));
}

/**
 * A batch whose units each rewrite the same hundred pages: every unit after the first copies them into
 * its savepoint's journal (400 KB), past the 64 KB at which SQLite would move that journal to a file.
 */
async function temporaryFilesDuringBatch(client: Database): Promise<string[]> {
  client.run("CREATE TABLE wide (id INTEGER PRIMARY KEY, pad BLOB NOT NULL) STRICT");
  const fill = client.prepare("INSERT INTO wide (pad) VALUES (randomblob(2000))");
  for (let i = 0; i < 200; i++) fill.run();
  const rewrite = client.prepare("UPDATE wide SET pad = randomblob(2000)");
  // One batch for all five units, however slow the machine (the default budget would split it).
  const commits = new GroupCommit(client, { lockWaitMs: 1000, maxBatchMs: 10_000 });
  let seen: string[] = [];
  await Promise.all([
    ...Array.from({ length: 4 }, () => commits.run(() => rewrite.run())),
    commits.run(() => {
      seen = openTemporaryFiles();
    }),
  ]);
  return seen;
}

test("a batch's savepoints journal in memory: however many pages its units rewrite, no temporary file", async () => {
  const dir = temporaryDir();
  const db = openSqlite({ path: join(dir, "store.db"), synchronous: "FULL", busyTimeoutMs: 1000 });
  opened.push(db.$client);
  expect(await temporaryFilesDuringBatch(db.$client)).toEqual([]);
  // The control: SQLite's default (temp_store=FILE at compile time) spills the same batch to a file.
  const bare = database(join(dir, "bare.db"), { strict: true });
  bare.run("PRAGMA journal_mode = WAL");
  expect((await temporaryFilesDuringBatch(bare)).length).toBeGreaterThan(0);
});
