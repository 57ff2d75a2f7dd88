/**
 * Headless chromium (Debian's package, at /usr/bin/chromium; .ci/run installs it) loading a page with
 * every origin but loopback cut off.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const CHROMIUM = "/usr/bin/chromium";

/**
 * The page's DOM once it has settled, and chromium's log. Every request off this machine is cut off:
 * names resolve to nothing (but 127.0.0.1), and anything not on loopback goes to a proxy that does not
 * exist. `--virtual-time-budget` lets the page run until it is idle (virtual time stands still while a
 * request is pending), then `--dump-dom` prints it. The log has the console, and every request the
 * page's Content-Security-Policy refused or that failed.
 */
export async function renderOffline(url: string): Promise<{ dom: string; log: string }> {
  if (!(await Bun.file(CHROMIUM).exists())) {
    throw new Error("this test needs Debian's chromium: apt-get install -y chromium (.ci/run installs it)");
  }
  const profile = mkdtempSync(join(tmpdir(), "flashcart-chromium-"));
  try {
    // Not spawnSync: a server under test may answer from this process's event loop.
    const run = Bun.spawn(
      [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        `--user-data-dir=${profile}`,
        "--proxy-server=http://127.0.0.1:9",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=30000",
        "--dump-dom",
        url,
      ],
      { stdout: "pipe", stderr: "pipe", timeout: 120_000 },
    );
    const [dom, log, exitCode] = await Promise.all([
      new Response(run.stdout).text(),
      new Response(run.stderr).text(),
      run.exited,
    ]);
    if (exitCode !== 0) throw new Error(`chromium exited ${exitCode}: ${log.slice(-2000)}`);
    return { dom, log };
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
}

/** The summary of every operation in the server's OpenAPI document: what /docs must list. */
export async function operationSummaries(baseUrl: string): Promise<string[]> {
  const spec = (await (await fetch(`${baseUrl}/openapi.json`)).json()) as {
    paths: Record<string, Record<string, { summary: string }>>;
  };
  return Object.values(spec.paths).flatMap((operations) => Object.values(operations).map((o) => o.summary));
}
