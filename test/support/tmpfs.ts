/**
 * A small tmpfs for the disk-full tests: a volume that really fills up (ENOSPC), mounted on a fresh
 * directory and unmounted afterwards. Mounting needs root, which every machine this project is tested
 * on gives (CI's included): without it the disk-full tests fail, saying so, rather than skip.
 */
import { closeSync, mkdtempSync, openSync, rmdirSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Tmpfs {
  dir: string;
  /** Fills what is left of the volume with a file of zeros; `free()` removes it again. */
  fill(): { free(): void };
  unmount(): void;
}

export function mountTmpfs(sizeMb: number): Tmpfs {
  if (process.getuid?.() !== 0) throw new Error("the disk-full tests mount a tmpfs, which needs root");
  const dir = mkdtempSync(join(tmpdir(), "flashcart-tmpfs-"));
  const mount = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", `size=${sizeMb}m`, "tmpfs", dir]);
  if (mount.exitCode !== 0) {
    rmdirSync(dir);
    throw new Error(`mount tmpfs on ${dir}: ${mount.stderr.toString()}`);
  }
  let fillers = 0;
  return {
    dir,
    fill() {
      const path = join(dir, `filler-${++fillers}`);
      const fd = openSync(path, "w");
      try {
        // Large chunks first, then single pages: the volume ends with no whole page free.
        for (const chunk of [Buffer.alloc(1024 * 1024), Buffer.alloc(4096)]) {
          try {
            for (;;) writeSync(fd, chunk);
          } catch (error) {
            if ((error as { code?: string }).code !== "ENOSPC") throw error;
          }
        }
      } finally {
        closeSync(fd);
      }
      return { free: () => rmSync(path, { force: true }) };
    },
    unmount() {
      // Lazily if something still holds a file there (a test that failed half-way): the mount
      // disappears from the tree at once and the memory is released when the last file closes.
      if (Bun.spawnSync(["umount", dir]).exitCode !== 0) Bun.spawnSync(["umount", "-l", dir]);
      if (Bun.spawnSync(["mountpoint", "-q", dir]).exitCode !== 0) rmSync(dir, { recursive: true, force: true });
    },
  };
}
