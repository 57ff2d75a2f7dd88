/**
 * Where a flashcart process spends its CPU, by layer, from a `bun --cpu-prof` profile (the bench
 * writes one per variant with `--cpu-prof DIR`, one per variant and round with `--rounds N`, named
 * like `pg-sharded-durable-events-on-round2.cpuprofile`):
 *
 *   bun load/layers.ts DIR/sqlite-durable.cpuprofile [--requests N] [--from EPOCH_µs --to EPOCH_µs]
 *
 * Each sample is charged to the layer of the innermost frame that belongs to one (a file of ours or
 * a package); a native frame (SQLite's step, a crypto call, JSON) is charged to the JS frame that
 * called it, except for the natives named in NATIVE, which are layers of their own. With
 * `--requests N`, each layer's share is also given in µs per request.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/**
 * Where a frame's file is, for the rules below: `node_modules/<package>/…` for a package's (from the
 * last node_modules/, so a package's own src/ folder, as postgres.js has, is not taken for ours),
 * `src/…` for flashcart's own, null for neither (a native frame, Bun's builtins).
 */
export function placeOf(url: string): string | null {
  const inPackage = url.lastIndexOf("/node_modules/");
  if (inPackage >= 0) return url.slice(inPackage + 1);
  const ours = url.lastIndexOf("/src/");
  return ours >= 0 ? url.slice(ours + 1) : null;
}

/** The layers by a frame's place, first match wins: what a file or package is for. */
const BY_PLACE: [RegExp, string][] = [
  [/^src\/store\/sqlite\/group-commit\.ts$/, "commit (group commit, COMMIT + fsync)"],
  [/^src\/store\/|^node_modules\/drizzle-orm\//, "store (statements, drizzle)"],
  [/^src\/domain\/(errors|script|writes|coupon|order|access|limits|time|pagination)\.ts$/, "domain (scripts, rules)"],
  [/^src\/http\/problem\.ts$/, "errors and problem documents"],
  [/^src\/auth\/|^src\/http\/auth\.ts$|^node_modules\/jose\//, "authentication (JWT)"],
  [/^src\/.*rate-limit|^node_modules\/hono-rate-limiter\//, "rate limiting"],
  [/^src\/http\/(schemas|body)\.ts$|^node_modules\/(zod|@hono\/zod-validator|@hono\/zod-openapi)\//, "validation"],
  [/^src\/observability\/|^node_modules\/prom-client\//, "metrics"],
  [/^src\/logger\.ts$|^node_modules\/(pino|sonic-boom|thread-stream)\//, "logging"],
  [/^src\/http\/observe\.ts$/, "request id, timing, log line"],
  [/^src\/http\//, "handlers"],
  [/^node_modules\/hono\//, "routing and context (Hono)"],
  [/^node_modules\/postgres\//, "PostgreSQL client (postgres.js)"],
  [/^src\//, "other flashcart code"],
  [/^node_modules\//, "other packages"],
];

/** Natives that are a layer of their own wherever they are called from. */
const NATIVE: Record<string, string> = {
  stringify: "JSON",
  parse: "JSON",
  Error: "errors and problem documents",
  "(garbage collector)": "garbage collection",
};

/**
 * Any frame of the event relay (src/events/) on the stack charges the sample to it. Only its own
 * turns of the loop: the work a relay's await resumes in (postgres.js reading the outbox's rows, a
 * fetch's answer) starts from the microtask queue with no relay frame on the stack, and is charged to
 * its own layer.
 */
const RELAY = /^src\/events\//;
const RELAY_LAYER = "event relay and sinks";

const IDLE = new Set(["(idle)", "(program)", "(root)"]);

function layerOfUrl(url: string): string | null {
  const place = placeOf(url);
  if (place === null) return null;
  for (const [pattern, layer] of BY_PLACE) if (pattern.test(place)) return layer;
  return null;
}

/** `window`: epoch µs, as the profile's startTime; samples outside it are left out. */
export function layersOf(
  profile: Profile,
  window: { from: number; to: number } = { from: 0, to: Number.POSITIVE_INFINITY },
): { busy: number; shares: Map<string, number> } {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);

  const layerOfNode = new Map<number, string | null>();
  const layerOf = (id: number): string | null => {
    if (layerOfNode.has(id)) return layerOfNode.get(id) ?? null;
    const node = byId.get(id);
    let layer: string | null = null;
    if (node !== undefined) {
      const { url, functionName } = node.callFrame;
      const native = url === "" && Object.hasOwn(NATIVE, functionName) ? NATIVE[functionName] : undefined;
      layer = native ?? (url === "" ? null : layerOfUrl(url));
      if (layer === null) {
        const parent = parentOf.get(id);
        layer = parent === undefined ? null : layerOf(parent);
      }
    }
    layerOfNode.set(id, layer);
    return layer;
  };

  // The relay's work is its own layer wherever it goes (its outbox reads in the store, a fetch, a
  // package's HMAC): what events cost beside the requests' own writes.
  const underRelayOfNode = new Map<number, boolean>();
  const underRelay = (id: number): boolean => {
    const known = underRelayOfNode.get(id);
    if (known !== undefined) return known;
    const parent = parentOf.get(id);
    const under =
      RELAY.test(placeOf(byId.get(id)?.callFrame.url ?? "") ?? "") || (parent !== undefined && underRelay(parent));
    underRelayOfNode.set(id, under);
    return under;
  };

  const shares = new Map<string, number>();
  let busy = 0;
  let at = profile.startTime;
  for (const [i, id] of profile.samples.entries()) {
    at += profile.timeDeltas[i] ?? 0;
    if (at < window.from || at > window.to) continue;
    const node = byId.get(id);
    const micros = profile.timeDeltas[i + 1] ?? 0;
    if (node === undefined || (IDLE.has(node.callFrame.functionName) && node.callFrame.url === "")) continue;
    const layer = underRelay(id) ? RELAY_LAYER : (layerOf(id) ?? "HTTP server and runtime (native)");
    shares.set(layer, (shares.get(layer) ?? 0) + micros);
    busy += micros;
  }
  return { busy, shares };
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Bun.argv.slice(2),
    allowPositionals: true,
    options: { requests: { type: "string" }, from: { type: "string" }, to: { type: "string" } },
  });
  const file = positionals[0];
  if (file === undefined) {
    console.error("usage: bun load/layers.ts PROFILE.cpuprofile [--requests N]");
    process.exit(2);
  }
  const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
  const { busy, shares } = layersOf(profile, {
    from: values.from === undefined ? 0 : Number(values.from),
    to: values.to === undefined ? Number.POSITIVE_INFINITY : Number(values.to),
  });
  const requests = values.requests === undefined ? null : Number(values.requests);
  const wall = profile.endTime - profile.startTime;
  console.log(`${file}: ${(busy / 1e6).toFixed(2)} s sampled (the whole profile: ${(wall / 1e6).toFixed(2)} s)`);
  console.log(`| layer | share of busy CPU |${requests === null ? "" : " µs per request |"}`);
  console.log(`|---|---:|${requests === null ? "" : "---:|"}`);
  for (const [layer, micros] of [...shares].sort((a, b) => b[1] - a[1])) {
    const perRequest = requests === null ? "" : ` ${(micros / requests).toFixed(1)} |`;
    console.log(`| ${layer} | ${((100 * micros) / busy).toFixed(1)} % |${perRequest}`);
  }
}
