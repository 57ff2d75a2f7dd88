/** Reads rows from either database with one SQL text: the tests' direct reads and the bench's invariant checks. */
import { Database } from "bun:sqlite";
import type postgres from "postgres";

export type RowSource = Database | postgres.Sql;
export type Row = Record<string, unknown>;

/** PostgreSQL sends count() and bigint sums as text: numbers come back as numbers from both backends. */
export function normaliseRow(row: Row): Row {
  return Object.fromEntries(
    Object.entries(row).map(([k, v]) => [k, typeof v === "string" && /^-?[0-9]+$/.test(v) ? Number(v) : v]),
  );
}

/** Runs a query written with `?` placeholders on SQLite or PostgreSQL and returns normalised rows. */
export function rowReader(source: RowSource): (sql: string, ...params: unknown[]) => Promise<Row[]> {
  if (source instanceof Database)
    return async (sql, ...params) => source.query(sql).all(...(params as never[])) as Row[];
  return async (sql, ...params) => {
    let n = 0;
    const rows = await source.unsafe(
      sql.replace(/\?/g, () => `$${++n}`),
      params as never[],
    );
    return rows.map(normaliseRow);
  };
}
