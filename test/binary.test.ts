/**
 * The single binary: `bun run build`'s command, copied alone into an empty directory, creates its
 * database, migrates from the migrations compiled into it, serves, and stops cleanly.
 */
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { spawnListening } from "../load/process.ts";
import { renderEmbeddedMigrations } from "../src/cli/embed-migrations.ts";
import { pgMigrations, sqliteMigrations } from "../src/store/migrations.generated.ts";
import { client } from "./support/api.ts";
import { operationSummaries, renderOffline } from "./support/chromium.ts";

setDefaultTimeout(120_000);

const root = resolve(import.meta.dir, "..");
const installedBundle = join(root, "node_modules/@scalar/api-reference/dist/browser/standalone.js");
const work = mkdtempSync(join(tmpdir(), "flashcart-binary-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

test("the embedded migrations are exactly the ones drizzle-kit journaled", async () => {
  for (const [dialect, embedded] of [
    ["sqlite", sqliteMigrations],
    ["pg", pgMigrations],
  ] as const) {
    const journal = JSON.parse(readFileSync(join(root, `drizzle/${dialect}/meta/_journal.json`), "utf8")) as {
      entries: { tag: string; when: number }[];
    };
    expect(embedded.map((m) => [m.tag, m.when])).toEqual(journal.entries.map((e) => [e.tag, e.when]));
    for (const migration of embedded) {
      expect(migration.sql).toBe(readFileSync(join(root, `drizzle/${dialect}/${migration.tag}.sql`), "utf8"));
    }
  }
  expect(await renderEmbeddedMigrations()).toContain('with { type: "text" }');
});

test("built, copied alone into an empty directory: migrates, serves a claim, an order and /docs, stops on SIGTERM", async () => {
  const packageJson = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  const outfile = join(work, "build", "flashcart");
  // The exact command of `bun run build`, with the output redirected to a temporary file.
  const build = Bun.spawnSync(
    [
      ...(packageJson.scripts.build as string).replace(/^bun /, `${process.execPath} `).split(" ").slice(0, -1),
      outfile,
    ],
    { cwd: root, stdout: "pipe", stderr: "pipe" },
  );
  expect(build.stderr.toString()).not.toContain("error");
  expect(build.exitCode).toBe(0);

  const dir = join(work, "empty");
  Bun.spawnSync(["mkdir", "-p", dir]);
  const binary = join(dir, "flashcart");
  copyFileSync(outfile, binary);
  Bun.spawnSync(["chmod", "+x", binary]);
  const run = (args: string[]) => {
    const result = Bun.spawnSync([binary, ...args], { cwd: dir, env: { PATH: process.env.PATH ?? "" } });
    expect(result.exitCode).toBe(0);
    return result.stdout.toString().trim();
  };
  expect(run(["--version"])).toBe(packageJson.version);
  expect(run(["--help"])).toContain("usage: flashcart [command]");

  const { proc: server, url } = await spawnListening([binary, "serve"], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? "", PORT: "0", HOST: "127.0.0.1", LOG_SAMPLE: "0" },
  });
  try {
    const admin = client(url, run(["token", "--admin"]));
    const user = await admin.user("binary", 5000);
    const coupon = await admin.coupon({ totalQuantity: 1 });
    const product = await admin.product(1500, 2);
    const buyer = client(url, run(["token", "--user", String(user.id)]));
    const claimed = await buyer.issue(user.id, coupon.id);
    expect(claimed.status).toBe(201);
    const order = await buyer.order(user.id, [{ productId: product.id, quantity: 2 }], claimed.body.id);
    expect(order.status).toBe(201);
    expect(order.body).toMatchObject({ totalAmount: 3000, discountAmount: 1000, paidAmount: 2000 });

    // The API reference works from the binary alone: the bundle is embedded, nothing is fetched elsewhere.
    const bundle = await fetch(`${url}/docs/scalar.js`, { headers: { "accept-encoding": "identity" } });
    expect(Buffer.from(await bundle.arrayBuffer()).equals(readFileSync(installedBundle))).toBe(true);
    const summaries = await operationSummaries(url);
    const { dom } = await renderOffline(`${url}/docs`);
    expect(summaries.filter((summary) => !dom.includes(summary))).toEqual([]);
  } finally {
    server.kill("SIGTERM");
  }
  expect(await server.exited).toBe(0);
});
