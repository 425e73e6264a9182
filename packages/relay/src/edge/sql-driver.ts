import type { SqlDriver, SqlValue } from '@mittsync/core';

/** The part of a Durable Object's `ctx.storage` the driver uses (SQLite-backed objects only). */
export interface DurableStorageLike {
  sql: {
    exec(
      query: string,
      ...bindings: unknown[]
    ): {
      toArray(): Record<string, unknown>[];
      raw(): { toArray(): unknown[][] };
    };
  };
  transactionSync<T>(fn: () => T): T;
}

/** Binds bytes as an ArrayBuffer of exactly their range (what the Durable Object API stores as a BLOB). */
function bind(v: SqlValue): unknown {
  if (v instanceof Uint8Array) {
    return v.byteOffset === 0 && v.byteLength === v.buffer.byteLength
      ? v.buffer
      : v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength);
  }
  return v;
}

function bindAll(params: SqlValue[]): unknown[] {
  for (const p of params) if (p instanceof Uint8Array) return params.map(bind);
  return params;
}

/** BLOBs come back as ArrayBuffers; the stores expect Uint8Array views (no copy). */
function fromRow(row: Record<string, unknown>): Record<string, unknown> {
  for (const k in row) {
    const v = row[k];
    if (v instanceof ArrayBuffer) row[k] = new Uint8Array(v);
  }
  return row;
}

function fromRaw(row: unknown[]): SqlValue[] {
  for (let i = 0; i < row.length; i++) {
    const v = row[i];
    if (v instanceof ArrayBuffer) row[i] = new Uint8Array(v);
  }
  return row as SqlValue[];
}

/**
 * A {@link SqlDriver} over a SQLite-backed Durable Object's `ctx.storage`: the same
 * `SqlHostStore` and schema as the Node relay run on it unchanged.
 *
 * Transactions are `transactionSync`, which nests (an inner call that throws rolls back to its
 * savepoint and the outer one goes on; tested on workerd in edge-storage.test.ts), as
 * better-sqlite3's nested transaction functions do. Durability is the platform's: writes of one
 * event are committed together, and the output gate holds every outgoing message (WebSocket
 * frames, responses) until they are.
 */
export class DurableSqlDriver implements SqlDriver {
  constructor(private readonly storage: DurableStorageLike) {}

  exec<Row extends Record<string, unknown> = Record<string, unknown>>(
    sql: string,
    ...params: SqlValue[]
  ): Row[] {
    const rows = this.storage.sql.exec(sql, ...bindAll(params)).toArray();
    for (const r of rows) fromRow(r);
    return rows as Row[];
  }

  execRaw(sql: string, ...params: SqlValue[]): SqlValue[][] {
    const rows = this.storage.sql
      .exec(sql, ...bindAll(params))
      .raw()
      .toArray();
    for (const r of rows) fromRaw(r);
    return rows as SqlValue[][];
  }

  transaction<T>(fn: () => T): T {
    return this.storage.transactionSync(fn);
  }
}
