/**
 * Preloaded into a service process (`bun --preload`) by durability.test.ts. synchronous and
 * journal_mode are settings of one connection, invisible to any other: so when the service closes a
 * database, this writes what that connection ran with, one JSON line, to $SQLITE_PROBE_FILE.
 */
import { Database } from "bun:sqlite";
import { appendFileSync } from "node:fs";

const probeFile = process.env.SQLITE_PROBE_FILE;
const close = Database.prototype.close;

Database.prototype.close = function (this: Database, ...args: Parameters<Database["close"]>) {
  if (probeFile !== undefined) {
    const read = (name: string) => this.query(`PRAGMA ${name}`).values()[0]?.[0];
    const line = { filename: this.filename, synchronous: read("synchronous"), journalMode: read("journal_mode") };
    appendFileSync(probeFile, `${JSON.stringify(line)}\n`);
  }
  return close.apply(this, args);
};
