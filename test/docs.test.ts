/**
 * The /docs page is self-contained: a real browser (Debian's chromium, headless) with every origin but
 * the server's cut off renders the reference and lists every operation; the script it runs is the
 * installed package's bundle, served by flashcart; the page's policy allows no other origin.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { operationSummaries, renderOffline } from "./support/chromium.ts";
import { startServer, type TestServer } from "./support/server.ts";

const installedBundle = resolve(import.meta.dir, "../node_modules/@scalar/api-reference/dist/browser/standalone.js");

describe("/docs", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(() => server.stop());

  test("renders offline in headless chromium and lists every operation, with nothing refused", async () => {
    const summaries = await operationSummaries(server.url);
    expect(summaries.length).toBeGreaterThan(15);

    const { dom, log } = await renderOffline(`${server.url}/docs`);
    expect(summaries.filter((summary) => !dom.includes(summary))).toEqual([]);
    // The browser refused nothing under the page's policy, and nothing failed to load.
    const refusals = log.split("\n").filter((line) => /Content Security Policy|Refused to|net::ERR_/.test(line));
    expect(refusals).toEqual([]);
  });

  test("runs only flashcart's own copy of the installed bundle, under a policy naming no other origin", async () => {
    const page = await fetch(`${server.url}/docs`);
    const html = await page.text();
    expect(html).not.toMatch(/https?:|\/\//);
    expect(html).toContain('<script src="/docs/scalar.js"></script>');

    const policy = page.headers.get("content-security-policy") ?? "";
    const directives: Record<string, string[]> = Object.fromEntries(
      policy.split(";").map((directive) => {
        const [name, ...sources] = directive.trim().split(/\s+/);
        return [name, sources];
      }),
    );
    expect(directives["default-src"]).toEqual(["'none'"]);
    expect(directives["script-src"]?.[0]).toBe("'self'");
    expect(directives["script-src"]?.[1]).toMatch(/^'sha256-[A-Za-z0-9+/]+=*'$/);
    expect(directives["connect-src"]).toEqual(["'self'"]);
    expect(directives["frame-ancestors"]).toEqual(["'none'"]);
    // Every source is this origin, a hash, 'none', inline styles, or data/blob URLs: no host, no scheme-wide wildcard.
    const sources = Object.values(directives).flat();
    expect(
      sources.filter((source) => !/^('self'|'none'|'unsafe-inline'|'sha256-.+'|data:|blob:)$/.test(source)),
    ).toEqual([]);
    expect(directives["script-src"]).not.toContain("'unsafe-inline'");

    // The bundle is the installed package's file, byte for byte, plain or gzipped.
    const installed = readFileSync(installedBundle);
    const plain = await fetch(`${server.url}/docs/scalar.js`, { headers: { "accept-encoding": "identity" } });
    expect(plain.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(Buffer.from(await plain.arrayBuffer()).equals(installed)).toBe(true);
    const gzipped = await fetch(`${server.url}/docs/scalar.js`, { headers: { "accept-encoding": "gzip" } });
    expect(gzipped.headers.get("content-encoding")).toBe("gzip");
    expect(Buffer.from(await gzipped.arrayBuffer()).equals(installed)).toBe(true); // fetch decodes it
  });

  test("the bundle's version is the one package.json pins exactly (the lockfile holds the rest)", () => {
    const root = resolve(import.meta.dir, "..");
    const pinned = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).dependencies["@scalar/api-reference"];
    expect(pinned).toMatch(/^\d+\.\d+\.\d+$/);
    const installed = JSON.parse(
      readFileSync(join(root, "node_modules/@scalar/api-reference/package.json"), "utf8"),
    ).version;
    expect(installed).toBe(pinned);
    expect(readFileSync(join(root, "bun.lock"), "utf8")).toContain(`"@scalar/api-reference@${pinned}"`);
  });
});
