/**
 * Private dependencies a fault test can stop, pause and start again: a redis-server and a PostgreSQL
 * cluster (initdb in a temporary directory), each on a port of its own, without persistence, removed
 * by `close()`. Never the machine's shared services, which other tests use at the same time. And the
 * service itself as its own process (`launchServe`), so that a fault meets the wiring a user runs.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { RedisClient } from "bun";
import { spawnListening } from "../../load/process.ts";
import { type Client, client } from "./api.ts";
import { tokenFor } from "./server.ts";

/** A port nothing listens on right now. */
function freePort(): number {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const { port } = probe;
  probe.stop(true);
  return port;
}

export interface PrivateRedis {
  url: string;
  /** Starts it (empty: nothing is saved) and waits until it answers PING. */
  start(): Promise<void>;
  /** Kills it outright; whatever it held is gone. */
  stop(): Promise<void>;
  /** SIGSTOP: it keeps its connections but answers nothing (a hung server). */
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}

export async function privateRedis(): Promise<PrivateRedis> {
  const port = freePort();
  const url = `redis://127.0.0.1:${port}`;
  let server: Bun.Subprocess | null = null;
  const redis: PrivateRedis = {
    url,
    async start() {
      server = Bun.spawn(
        ["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        { stdout: "ignore", stderr: "ignore" },
      );
      for (;;) {
        const probe = new RedisClient(url, { autoReconnect: false, enableOfflineQueue: false, connectionTimeout: 500 });
        const answer = await probe
          .connect()
          .then(() => probe.send("PING", []))
          .catch(() => null);
        probe.close();
        if (answer === "PONG") return;
        if (server.exitCode !== null) throw new Error(`redis-server on ${port} exited with ${server.exitCode}`);
        await Bun.sleep(20);
      }
    },
    async stop() {
      if (server === null) return;
      server.kill("SIGCONT");
      server.kill("SIGKILL");
      await server.exited;
      server = null;
    },
    pause: () => server?.kill("SIGSTOP"),
    resume: () => server?.kill("SIGCONT"),
    close: () => redis.stop(),
  };
  await redis.start();
  return redis;
}

export interface PrivatePostgres {
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  url: string;
  /** Starts the server and waits until it accepts connections; `settings` as `-c name=value`. */
  start(settings?: Record<string, string>): Promise<void>;
  /** `fast`: backends are told to end (57P01); `immediate`: the server quits at once, as in a crash. */
  stop(mode?: "fast" | "immediate"): Promise<void>;
  /** SIGSTOP to the postmaster: sessions already open go on, new connections wait for ever. */
  pause(): void;
  resume(): void;
  /** Runs psql as the superuser. */
  psql(sql: string): Promise<string>;
  close(): Promise<void>;
}

const pgBin = Bun.spawnSync(["pg_config", "--bindir"]).stdout.toString().trim();

/** Runs a PostgreSQL binary as the `postgres` user when we are root (initdb and postgres refuse root). */
function asOwner(command: string[]): string[] {
  return process.getuid?.() === 0 ? ["runuser", "-u", "postgres", "--", ...command] : command;
}

async function run(command: string[]): Promise<string> {
  const proc = Bun.spawn(asOwner(command), { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  if (code !== 0) throw new Error(`${command.join(" ")} exited with ${code}: ${err}`);
  return out;
}

export async function privatePostgres(): Promise<PrivatePostgres> {
  const dir = mkdtempSync(join(tmpdir(), "flashcart-pg-"));
  if (process.getuid?.() === 0) {
    const idOf = (flag: string) => Number(Bun.spawnSync(["id", flag, "postgres"]).stdout.toString());
    chownSync(dir, idOf("-u"), idOf("-g"));
  }
  chmodSync(dir, 0o700);
  const data = join(dir, "data");
  const port = freePort();
  await run([join(pgBin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"]);
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=40`;
  const pg: PrivatePostgres = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async start(settings = {}) {
      const more = Object.entries(settings).map(([name, value]) => ` -c ${name}=${value}`);
      const all = options + more.join("");
      // Right after an immediate stop, a backend of the old server may still be exiting and hold the
      // shared memory, and the new postmaster refuses to start beside it (seen once in a full run on
      // a loaded machine): a few more tries, then the error with the server's own log.
      for (let attempt = 1; ; attempt++) {
        try {
          await run([join(pgBin, "pg_ctl"), "-D", data, "-o", all, "-l", join(dir, "log"), "-w", "start"]);
          return;
        } catch (error) {
          if (attempt === 5) {
            let log = "(no server log)";
            try {
              log = readFileSync(join(dir, "log"), "utf8").split("\n").slice(-15).join("\n");
            } catch {
              // pg_ctl failed before the server wrote one: its own message is all there is
            }
            throw new Error(`${(error as Error).message}\n${log}`);
          }
          await Bun.sleep(200 * attempt);
        }
      }
    },
    async stop(mode = "fast") {
      await run([join(pgBin, "pg_ctl"), "-D", data, "-m", mode, "-w", "stop"]);
    },
    pause: () => process.kill(postmaster(), "SIGSTOP"),
    resume: () => process.kill(postmaster(), "SIGCONT"),
    psql: (sql) =>
      run([join(pgBin, "psql"), "-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-Atqc", sql, "postgres"]),
    async close() {
      try {
        pg.resume();
      } catch {
        // not running
      }
      await pg.stop("immediate").catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
  const postmaster = () => Number(readFileSync(join(data, "postmaster.pid"), "utf8").split("\n")[0]);
  await pg.start();
  return pg;
}

export interface Served {
  proc: Bun.Subprocess<"ignore", "pipe", "pipe" | "inherit">;
  url: string;
  admin: Client;
  as(userId: number): Promise<Client>;
  anonymous: Client;
  /** SIGTERM; resolves to the exit code. */
  stop(): Promise<number>;
}

/** Polls until `check` holds (the test's timeout bounds it). */
export async function until(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await Bun.sleep(50);
}

/** The served process answers /ready with 200. */
export const ready = async (app: Served) => (await app.anonymous.get("/ready")).status === 200;

/** `bun src/main.ts serve` as its own process, configured by `env` (DATABASE_URL, COUPON_STRATEGY, …). */
export async function launchServe(env: Record<string, string>): Promise<Served> {
  const secret = randomBytes(32).toString("hex");
  const { proc, url } = await spawnListening(
    [process.execPath, resolve(import.meta.dir, "../../src/main.ts"), "serve"],
    {
      cwd: tmpdir(),
      env: {
        ...process.env,
        PORT: "0",
        HOST: "127.0.0.1",
        LOG_LEVEL: "info",
        LOG_SAMPLE: "0",
        JWT_SECRET: secret,
        REDIS_URL: "",
        WORKERS: "",
        RATE_LIMIT_COUPON_CLAIMS: "0",
        RATE_LIMIT_ORDERS: "0",
        ...env,
      },
    },
  );
  const key = new TextEncoder().encode(secret);
  return {
    proc,
    url,
    admin: client(url, await tokenFor(key, "admin")),
    as: async (userId) => client(url, await tokenFor(key, userId)),
    anonymous: client(url),
    async stop() {
      proc.kill("SIGTERM");
      return proc.exited;
    },
  };
}
