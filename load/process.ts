/** Starting a flashcart process (or the bench's hello-world) and waiting until it listens: used by the bench and the tests. */

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
}

/**
 * Spawns `cmd` and reads its stdout until a JSON log line whose `msg` ends with "listening" gives a
 * `url`. `env` is passed as is (callers add `process.env` when
 * they want it); stderr is kept for the error message unless `stderr: "inherit"`.
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
        // Keep draining its logs (one line per request at info), or a full pipe would stall the process.
        void proc.stdout.pipeTo(new WritableStream());
        const url = entry.url.replace(/\/$/, "").replace("0.0.0.0", "127.0.0.1");
        return { proc, url, logs };
      }
    }
  }
}
