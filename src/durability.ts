/**
 * What a 2xx promises if the power fails right after it, named once for both backends. Every
 * deployment and every bench figure belongs to one class, and figures are compared only within a
 * class: the fsync per commit alone changes PostgreSQL's hot-row throughput about sevenfold on this
 * kind of machine (engineering notes), which would otherwise pass for a difference between designs.
 */

export const sqliteSynchronousLevels = ["FULL", "NORMAL"] as const;
export type SqliteSynchronous = (typeof sqliteSynchronousLevels)[number];

export const pgSynchronousCommitLevels = ["on", "off"] as const;
export type PgSynchronousCommit = (typeof pgSynchronousCommitLevels)[number];

export const durabilityClasses = ["durable", "relaxed"] as const;
export type Durability = (typeof durabilityClasses)[number];

export interface DurabilitySettings {
  sqliteSynchronous: SqliteSynchronous;
  pgSynchronousCommit: PgSynchronousCommit;
  /** The promise, in a sentence a reader of the bench report can check the settings against. */
  promise: string;
}

export const durabilitySettings: Record<Durability, DurabilitySettings> = {
  durable: {
    sqliteSynchronous: "FULL",
    pgSynchronousCommit: "on",
    promise: "the commit is flushed to disk (fsync) before the answer: a 2xx survives a power loss",
  },
  relaxed: {
    sqliteSynchronous: "NORMAL",
    pgSynchronousCommit: "off",
    promise: "a power loss may lose the last acknowledged commits, never corrupts the database",
  },
};

/** The class a backend's setting belongs to (the two backends' values never overlap). */
export function durabilityOf(setting: SqliteSynchronous | PgSynchronousCommit): Durability {
  const { durable } = durabilitySettings;
  return setting === durable.sqliteSynchronous || setting === durable.pgSynchronousCommit ? "durable" : "relaxed";
}
