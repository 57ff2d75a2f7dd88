/** Applies pending migrations to DATABASE_URL and exits. The server also migrates at start-up. */
import { ConfigError, loadConfig } from "../config.ts";
import { openStore } from "../store/index.ts";

/** Takes no arguments: the environment configures it (DATABASE_URL). */
export async function run(_argv: string[]): Promise<void> {
  try {
    const config = loadConfig();
    const store = await openStore(config);
    await store.close();
    console.log(
      JSON.stringify({ migrated: config.database.kind === "sqlite" ? config.database.path : config.database.kind }),
    );
  } catch (error) {
    console.error(error instanceof ConfigError ? error.message : error);
    process.exit(1);
  }
}

if (import.meta.main) await run(process.argv.slice(2));
