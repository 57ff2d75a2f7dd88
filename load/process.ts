/** Starting a flashcart process (or the bench's hello-world) and waiting until it listens: used by the bench and the tests. */
import { existsSync, readdirSync, readFileSync } from "node:fs";

export interface LogLine {
  msg?: string;
  url?: string;
  text?: string;
}

export interface ListeningProcess {
  proc: Bun.Subprocess<"ignore", "pipe", "pipe" | "inherit">;
  /** Where it listens, without a trailing slash; a wildcard host is replaced by 127.0.0.1. */
  url: string;
  /** What it logged up to and including the "… listening" line: JSON lines parsed, any other line as `text`. */
  logs: LogLine[];
  /** Its last lines of output since (stdout, and stderr unless inherited), for a diagnosis when it misbehaves. */
  tail(): string[];
}

/** Lines of output kept after "listening" (the bench's services log a line per sampled request). */
const TAIL_LINES = 50;

/** Reads `stream` to its end, keeping its last TAIL_LINES lines in `into` (a full pipe would stall the process). */
async function keepTail(stream: ReadableStream<Uint8Array>, into: string[], label: string): Promise<void> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of stream) {
    pending += decoder.decode(chunk, { stream: true });
    const lines = pending.split("\n");
    pending = lines.pop() as string;
    for (const line of lines) {
      into.push(`${label}: ${line}`);
      if (into.length > TAIL_LINES) into.shift();
    }
  }
  if (pending !== "") into.push(`${label}: ${pending}`);
}

/**
 * Spawns `cmd` and reads its stdout until a JSON log line whose `msg` ends with "listening" gives a
 * `url`. `env` is passed as is (callers add `process.env` when
 * they want it); stderr is kept for the error message unless `stderr: "inherit"`. Once it listens,
 * its output is drained, and its last lines kept (`tail()`).
 */
export async function spawnListening(
  cmd: string[],
  options: { cwd: string; env: Record<string, string | undefined>; stderr?: "pipe" | "inherit" },
): Promise<ListeningProcess> {
  const proc = Bun.spawn(cmd, {
    cwd: options.cwd,
    env: options.env,
    stdin: "ignore",
    stdout: "pipe",
    stderr: options.stderr ?? "pipe",
  });
  const reader = proc.stdout.getReader();
  const decoder = new TextDecoder();
  const logs: LogLine[] = [];
  let pending = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) {
      const stderr = proc.stderr instanceof ReadableStream ? await new Response(proc.stderr).text() : "";
      throw new Error(`${cmd.join(" ")} exited before listening: ${stderr}`);
    }
    pending += decoder.decode(value, { stream: true });
    const lines = pending.split("\n");
    pending = lines.pop() as string;
    for (const line of lines) {
      let entry: LogLine;
      try {
        entry = line.startsWith("{") ? JSON.parse(line) : { text: line };
      } catch {
        entry = { text: line };
      }
      logs.push(entry);
      if (entry.msg?.endsWith("listening") && entry.url !== undefined) {
        reader.releaseLock();
        // Keep draining its output (one line per request at info), or a full pipe would stall the process.
        const tail: string[] = [];
        void keepTail(proc.stdout, tail, "stdout").catch(() => {});
        if (proc.stderr instanceof ReadableStream) void keepTail(proc.stderr, tail, "stderr").catch(() => {});
        const url = entry.url.replace(/\/$/, "").replace("0.0.0.0", "127.0.0.1");
        return { proc, url, logs, tail: () => [...tail] };
      }
    }
  }
}

/**
 * CPU seconds (user + system) used so far by a process and every descendant it has now (a
 * supervisor's workers), from /proc; null where there is none (not Linux). Unlike requests per
 * second, CPU per request hardly moves when other work shares the machine.
 */
export function cpuSecondsOf(pid: number): number | null {
  if (!existsSync("/proc/self/stat")) return null;
  const ticksPerSecond = 100; // USER_HZ, 100 on every Linux architecture Bun runs on
  const parentOf = new Map<number, number>();
  const ticksOf = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // ended meanwhile
    }
    // Fields after the command name, which is in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    parentOf.set(Number(entry), Number(fields[1]));
    ticksOf.set(Number(entry), Number(fields[11]) + Number(fields[12]));
  }
  if (!ticksOf.has(pid)) return null;
  let ticks = 0;
  for (const [candidate, own] of ticksOf) {
    for (let p: number | undefined = candidate; p !== undefined && p > 1; p = parentOf.get(p)) {
      if (p === pid) {
        ticks += own;
        break;
      }
    }
  }
  return ticks / ticksPerSecond;
}
