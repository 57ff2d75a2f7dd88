/**
 * The interactive API reference at /docs: Scalar's browser bundle, from the installed
 * @scalar/api-reference (its version pinned by the lockfile), served by flashcart itself at
 * /docs/scalar.js, under a Content-Security-Policy that lets the page reach no other origin. People
 * paste bearer tokens (admin ones too) into this page: no code from elsewhere may run in it, and it
 * works offline and from the single binary alike.
 */
import { createHash } from "node:crypto";
import { Hono } from "hono";
// Imported as a file: its path here, and `bun build --compile` embeds the file in the binary. The
// package's exports do not name its browser bundle, hence the path into node_modules; and the bundle
// ships no types, which TypeScript would otherwise want.
// @ts-expect-error: an untyped JavaScript file, imported for its path
import scalarBundlePath from "../../node_modules/@scalar/api-reference/dist/browser/standalone.js" with {
  type: "file",
};

export const SCALAR_BUNDLE_PATH = "/docs/scalar.js";

/**
 * Scalar's options. Off: its default fonts (fetched from its own servers), telemetry and the AI
 * agent (both call Scalar's services); the policy below would block them anyway, this keeps the
 * browser from trying.
 */
const reference = {
  url: "/openapi.json",
  withDefaultFonts: false,
  telemetry: false,
  agent: { disabled: true },
  showDeveloperTools: "never",
  defaultOpenAllTags: true,
};

/** The page's one inline script, allowed by its hash rather than by allowing inline scripts at all. */
const start = `Scalar.createApiReference("#app", ${JSON.stringify(reference)});`;

const page = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>flashcart API</title>
  </head>
  <body>
    <div id="app"></div>
    <script src="${SCALAR_BUNDLE_PATH}"></script>
    <script>${start}</script>
  </body>
</html>
`;

/**
 * Nothing from another origin: scripts are flashcart's bundle and the start script (by hash); the
 * requests the page makes (the OpenAPI document, "try it") go to flashcart only. Styles may be inline,
 * as the bundle injects its own (styles cannot run code).
 */
export const DOCS_CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  `script-src 'self' 'sha256-${createHash("sha256").update(start).digest("base64")}'`,
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** The bundle (4 MB), gzipped once on first demand (about a quarter of that), for browsers that take it. */
let gzippedBundle: Uint8Array<ArrayBuffer> | null = null;

export function docsRoutes(): Hono {
  return new Hono()
    .get("/docs", (c) => {
      c.header("Content-Security-Policy", DOCS_CONTENT_SECURITY_POLICY);
      return c.html(page);
    })
    .get(SCALAR_BUNDLE_PATH, async (c) => {
      c.header("Content-Type", "text/javascript; charset=utf-8");
      c.header("Cache-Control", "public, max-age=3600");
      c.header("Vary", "Accept-Encoding");
      if (!/\bgzip\b/.test(c.req.header("accept-encoding") ?? "")) {
        return c.body(await Bun.file(scalarBundlePath as string).bytes());
      }
      gzippedBundle ??= Bun.gzipSync(await Bun.file(scalarBundlePath as string).bytes()) as Uint8Array<ArrayBuffer>;
      c.header("Content-Encoding", "gzip");
      return c.body(gzippedBundle);
    });
}
