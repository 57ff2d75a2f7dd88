/**
 * The service as a user runs it: `bun src/index.ts` as its own process, configured by the environment.
 */

import { Database } from "bun:sqlite";
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type Client, client } from "./support/api.ts";

const entry = resolve(import.meta.dir, "../src/index.ts");
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "flashcart-proc-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface Running {
  proc: Bun.Subprocess<"ignore", "pipe", "pipe">;
  url: string;
  api: Client;
}

/** Starts the server on a random port and waits for its "listening" log line. */
async function launch(cwd: string, env: Record<string, string> = {}): Promise<Running> {
  const proc = Bun.spawn([process.execPath, entry], {
    cwd,
    env: { ...process.env, PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "info", ...env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  cleanups.push(() => proc.kill("SIGKILL"));
  const reader = proc.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`server exited before listening: ${await new Response(proc.stderr).text()}`);
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  const line = JSON.parse(text.split("\n")[0] as string) as { msg: string; url: string };
  expect(line.msg).toBe("flashcart listening");
  const url = line.url.replace(/\/$/, "");
  return { proc, url, api: client(url) };
}

describe("bun start", () => {
  test("on a fresh directory: creates ./data/flashcart.db, migrates, serves, and stops cleanly on SIGTERM", async () => {
    const cwd = tempDir();
    const { proc, api } = await launch(cwd);
    expect((await api.get("/health")).body).toEqual({ status: "ok" });
    expect((await api.get("/ready")).body).toEqual({ status: "ready" });
    const user = await api.user("first", 5000);
    const product = await api.product(1200, 3);
    expect((await api.order(user.id, [{ productId: product.id, quantity: 2 }])).status).toBe(201);

    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);

    const dbPath = join(cwd, "data", "flashcart.db");
    expect(existsSync(dbPath)).toBe(true);
    const db = new Database(dbPath, { readonly: true });
    expect(db.query("SELECT balance FROM users WHERE id = ?").get(user.id)).toEqual({ balance: 5000 - 2400 });
    expect(db.query("SELECT stock FROM products WHERE id = ?").get(product.id)).toEqual({ stock: 1 });
    db.close();
  });

  test("a bad variable stops start-up with a message naming it, exit 1, no stack trace", async () => {
    const proc = Bun.spawn([process.execPath, entry], {
      cwd: tempDir(),
      env: { ...process.env, PORT: "not-a-port" },
      stdout: "pipe",
      stderr: "pipe",
    });
    expect(await proc.exited).toBe(1);
    const stderr = await new Response(proc.stderr).text();
    expect(stderr).toContain("PORT:");
    expect(stderr).not.toMatch(/\n\s+at /);
  });
});

describe("several processes on one database file", () => {
  test("3 servers sharing a file issue exactly the supply and never one coupon twice", async () => {
    const cwd = tempDir();
    const env = { DATABASE_URL: `sqlite:${join(cwd, "shared.db")}` };
    const first = await launch(cwd, env);
    const coupon = await first.api.coupon({ totalQuantity: 60 });
    const userIds: number[] = [];
    for (let i = 0; i < 200; i++) userIds.push((await first.api.user(`u${i}`)).id);
    const servers = [first, await launch(cwd, env), await launch(cwd, env)];

    // Every user asks every server at once.
    const replies = await Promise.all(
      userIds.flatMap((id) => servers.map((server) => server.api.issue(id, coupon.id))),
    );

    const statuses = replies.map((r) => (r.status === 201 ? "201" : `${r.status} ${r.body?.code}`));
    expect(statuses.filter((s) => s === "201").length).toBe(60);
    expect(statuses.every((s) => s === "201" || s === "409 COUPON_SOLD_OUT" || s === "409 COUPON_ALREADY_ISSUED")).toBe(
      true,
    );
    for (const server of servers) server.proc.kill("SIGTERM");
    await Promise.all(servers.map((server) => server.proc.exited));

    const db = new Database(join(cwd, "shared.db"), { readonly: true });
    expect(db.query("SELECT issued_quantity AS n FROM coupons").get()).toEqual({ n: 60 });
    expect(db.query("SELECT count(*) AS n, count(DISTINCT user_id) AS users FROM user_coupons").get()).toEqual({
      n: 60,
      users: 60,
    });
    db.close();
  });
});
