import type { Config } from "../config.ts";
import type { Store } from "./port.ts";
import { openSqlite } from "./sqlite/database.ts";
import { SqliteStore } from "./sqlite/store.ts";

export type { Store } from "./port.ts";

/** `DATABASE_URL` is the single switch between backends. */
export function openStore(config: Pick<Config, "database" | "sqlite">): Store {
  switch (config.database.kind) {
    case "sqlite":
      return new SqliteStore(
        openSqlite({
          path: config.database.path,
          synchronous: config.sqlite.synchronous,
          busyTimeoutMs: config.sqlite.busyTimeoutMs,
        }),
      );
  }
}
