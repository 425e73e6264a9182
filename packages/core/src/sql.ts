/**
 * The one synchronous SQL interface the relay's storage runs on: better-sqlite3 on Node and
 * `ctx.storage.sql` in a Durable Object both fit it. Parameters are always bound, never
 * spliced into the SQL text.
 */
export interface SqlDriver {
  /** Runs one statement; returns result rows (empty for statements without results). */
  exec<Row extends Record<string, unknown> = Record<string, unknown>>(
    sql: string,
    ...params: SqlValue[]
  ): Row[];
  /**
   * Optional: runs a query and returns its rows as arrays, in the order of the selected
   * columns. Bulk reads (catch-up pages) use it where the driver has it: no object per row.
   */
  execRaw?(sql: string, ...params: SqlValue[]): SqlValue[][];
  /** Runs `fn` in one transaction: commits when it returns, rolls back when it throws. */
  transaction<T>(fn: () => T): T;
}

export type SqlValue = null | number | bigint | string | Uint8Array;
