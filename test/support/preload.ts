/**
 * Every test file gets a 60 s default timeout: the suites start real servers on real databases
 * (PostgreSQL too) and 5 s is too short on a busy machine.
 *
 * Why this is not a plain setDefaultTimeout() here: Bun 1.4.5 ignores a `timeout` key under [test] in
 * bunfig.toml (oven-sh/bun#7789), and a setDefaultTimeout() in a preload reaches only the first file
 * of a run (oven-sh/bun#43787), both checked on this machine. So each test file's source gets the call
 * in front of its first line (on that same line: line numbers in traces are unchanged). A file may
 * still set its own (the binary build needs more). Once #43787 is fixed this becomes
 * `setDefaultTimeout(60_000)` alone.
 */
import { plugin } from "bun";

const DEFAULT_TIMEOUT_MS = 60_000;

plugin({
  name: "default test timeout",
  setup(build) {
    build.onLoad({ filter: /\/test\/.*\.test\.ts$/ }, async ({ path }) => ({
      loader: "ts",
      contents: `import { setDefaultTimeout as __setDefaultTimeout } from "bun:test"; __setDefaultTimeout(${DEFAULT_TIMEOUT_MS}); ${await Bun.file(path).text()}`,
    }));
  },
});
