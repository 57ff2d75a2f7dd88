/** Type errors and lint findings fail `bun test` like any other defect. */
import { expect, test } from "bun:test";
import { resolve } from "node:path";

const root = resolve(import.meta.dir, "..");

function run(cmd: string[]): { code: number; output: string } {
  const result = Bun.spawnSync(cmd, { cwd: root, stdout: "pipe", stderr: "pipe" });
  return { code: result.exitCode, output: `${result.stdout.toString()}${result.stderr.toString()}` };
}

test("the TypeScript compiler finds no errors (strict)", () => {
  const { code, output } = run([resolve(root, "node_modules/.bin/tsc"), "--noEmit", "-p", root]);
  expect(output).toBe("");
  expect(code).toBe(0);
});

test("the k6 scripts type-check against @types/k6 (k6 itself may not be installed here)", () => {
  const { code, output } = run([resolve(root, "node_modules/.bin/tsc"), "-p", resolve(root, "load/k6/tsconfig.json")]);
  expect(output).toBe("");
  expect(code).toBe(0);
});

test("Biome finds no lint or format problems", () => {
  const { code, output } = run([resolve(root, "node_modules/.bin/biome"), "check", "--error-on-warnings", "."]);
  if (code !== 0) console.error(output);
  expect(code).toBe(0);
});

/** Versions with known security fixes (hono: bodyLimit bypass and JWT claim checks; drizzle-orm: identifier escaping). */
test.each([
  ["hono", "4.12.18"],
  ["drizzle-orm", "0.45.2"],
  ["jose", "6.0.0"],
])("%s is at least %s", async (name, minimum) => {
  const { version } = await Bun.file(resolve(root, "node_modules", name, "package.json")).json();
  expect(Bun.semver.order(version, minimum)).toBeGreaterThanOrEqual(0);
});
