import pino from "pino";
import type { LogLevel } from "./config.ts";

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  enabled(level: LogLevel): boolean;
}

/**
 * Structured JSON logs (pino) on stdout, one object per line: `time`, `level` (as a name), `msg` and
 * the fields. Synchronous destination: a transport would break inside a compiled binary, and a line
 * must not be lost when the process exits.
 */
export function createLogger(level: LogLevel): Logger {
  const log = pino(
    {
      level,
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ dest: 1, sync: true }),
  );
  return {
    debug: (msg, fields) => log.debug(fields ?? {}, msg),
    info: (msg, fields) => log.info(fields ?? {}, msg),
    warn: (msg, fields) => log.warn(fields ?? {}, msg),
    error: (msg, fields) => log.error(fields ?? {}, msg),
    enabled: (lvl) => lvl !== "silent" && log.isLevelEnabled(lvl),
  };
}

export const silentLogger = createLogger("silent");
