import type { HostStore } from '@mittsync/core';
import { runHostStoreTests } from '@mittsync/core/testing';
import { SqlHostStore } from '../../sql-host-store';
import { DurableSqlDriver, type DurableStorageLike } from '../sql-driver';
import type { DurableObjectNamespaceLike } from '../workers-api';
import { runCollected } from './vitest-shim';

// A test Worker for edge-storage.test.ts, bundled and run on workerd: a SQLite-backed Durable
// Object that exercises DurableSqlDriver over its real `ctx.storage` and answers with what it saw,
// as JSON. Each request names its own object (`?object=`), so every check starts from an empty
// database.

/** A value as JSON can carry it: bytes are tagged with the type they came back as. */
export type Shown =
  | null
  | number
  | string
  | boolean
  | { bytes: number[]; type: string }
  | Shown[]
  | { [k: string]: Shown };

function show(v: unknown): Shown {
  if (v instanceof Uint8Array || v instanceof ArrayBuffer) {
    return { type: v.constructor.name, bytes: [...(v instanceof Uint8Array ? v : new Uint8Array(v))] };
  }
  if (Array.isArray(v)) return v.map(show);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, Shown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = show(x);
    return out;
  }
  return v as Shown;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** What `/driver` answers. */
export interface DriverReport {
  /** Keys after an outer transaction whose inner transaction threw (and was caught). */
  innerThrew: { keys: string[]; error: string | undefined; innerSawOuter: boolean };
  /** Keys after an outer transaction that threw after a committed inner one. */
  outerThrew: { keys: string[]; error: string | undefined };
  /** What a transaction returns. */
  returned: Shown;
  blob: {
    /** The view written: its byte offset into its buffer, and the buffer's length. */
    written: { byteOffset: number; byteLength: number; bufferLength: number };
    exec: Shown;
    execRaw: Shown;
    /** The row found by binding the same view in a WHERE clause. */
    matchedBy: Shown;
    /** SQLite's own view of the stored value. */
    stored: Shown;
    /** A zero-offset view shorter than its buffer, read back. */
    prefix: Shown;
  };
  execRaw: { row: Shown; duplicateNames: Shown; empty: Shown; exec: Shown };
}

function driverChecks(storage: DurableStorageLike): DriverReport {
  const d = new DurableSqlDriver(storage);
  d.exec('CREATE TABLE t (k TEXT PRIMARY KEY)');
  const keys = () => d.exec<{ k: string }>('SELECT k FROM t ORDER BY k').map((r) => r.k);

  let innerError: string | undefined;
  let innerSawOuter = false;
  d.transaction(() => {
    d.exec(`INSERT INTO t VALUES ('outer-before')`);
    try {
      d.transaction(() => {
        d.exec(`INSERT INTO t VALUES ('inner')`);
        innerSawOuter = keys().includes('outer-before');
        throw new Error('inner boom');
      });
    } catch (e) {
      innerError = message(e);
    }
    d.exec(`INSERT INTO t VALUES ('outer-after')`);
  });
  const innerThrew = { keys: keys(), error: innerError, innerSawOuter };

  d.exec('DELETE FROM t');
  let outerError: string | undefined;
  try {
    d.transaction(() => {
      d.exec(`INSERT INTO t VALUES ('doomed-outer')`);
      d.transaction(() => d.exec(`INSERT INTO t VALUES ('doomed-inner')`));
      throw new Error('outer boom');
    });
  } catch (e) {
    outerError = message(e);
  }
  const outerThrew = { keys: keys(), error: outerError };
  const returned = show(d.transaction(() => d.transaction(() => ({ answer: 42 }))));

  d.exec('CREATE TABLE b (id INTEGER PRIMARY KEY, v BLOB)');
  const backing = new Uint8Array(32).map((_, i) => i);
  const view = backing.subarray(5, 12);
  d.exec('INSERT INTO b VALUES (1, ?)', view);
  d.exec('INSERT INTO b VALUES (2, ?)', backing.subarray(0, 3));
  const blob = {
    written: {
      byteOffset: view.byteOffset,
      byteLength: view.byteLength,
      bufferLength: view.buffer.byteLength,
    },
    exec: show(d.exec('SELECT v FROM b WHERE id = 1')[0]?.v),
    execRaw: show(d.execRaw('SELECT v FROM b WHERE id = 1')[0]?.[0]),
    matchedBy: show(d.execRaw('SELECT id FROM b WHERE v = ?', view)),
    stored: show(
      d.exec('SELECT typeof(v) AS type, length(v) AS length, hex(v) AS hex FROM b WHERE id = 1')[0],
    ),
    prefix: show(d.exec('SELECT v FROM b WHERE id = 2')[0]?.v),
  };

  const execRaw = {
    row: show(d.execRaw(`SELECT 1 AS a, 'x' AS b, NULL AS c, x'0a0b' AS d, 2.5 AS e`)),
    duplicateNames: show(d.execRaw('SELECT 1 AS a, 2 AS a')),
    empty: show(d.execRaw('SELECT k FROM t WHERE k = ?', 'nothing')),
    exec: show(d.exec(`SELECT 1 AS a, 'x' AS b, NULL AS c, x'0a0b' AS d, 2.5 AS e`)),
  };
  return { innerThrew, outerThrew, returned, blob, execRaw };
}

/** Runs core's HostStore contract suite on SqlHostStore over this object's SQL. */
async function hostStoreSuite(storage: DurableStorageLike) {
  let n = 0;
  const buckets = new Map<HostStore, string>();
  // A fresh driver and store on every open: nothing survives in memory between them, so what
  // a reopened store sees came from SQLite. (A real restart of the object is edge-restart.test.ts.)
  const open = (bucket: string): HostStore => {
    const store = new SqlHostStore(new DurableSqlDriver(storage), bucket);
    buckets.set(store, bucket);
    return store;
  };
  runHostStoreTests('Durable Object SQL (workerd)', {
    create: () => open(`bucket-${++n}`),
    reopen: (previous) => open(buckets.get(previous) ?? 'unknown'),
    sibling: () => open(`sibling-${++n}`),
  });
  return runCollected();
}

/** The probe object (SQLite-backed). */
export class SqlProbe {
  constructor(private readonly ctx: { storage: DurableStorageLike }) {}

  async fetch(request: Request): Promise<Response> {
    const path = new URL(request.url).pathname;
    try {
      if (path === '/driver') return Response.json(driverChecks(this.ctx.storage));
      if (path === '/host-store') return Response.json(await hostStoreSuite(this.ctx.storage));
    } catch (e) {
      return Response.json({ error: message(e) }, { status: 500 });
    }
    return new Response('not found', { status: 404 });
  }
}

export default {
  fetch(request: Request, env: { PROBE: DurableObjectNamespaceLike }): Promise<Response> {
    const name = new URL(request.url).searchParams.get('object') ?? 'probe';
    return env.PROBE.get(env.PROBE.idFromName(name)).fetch(request);
  },
};
