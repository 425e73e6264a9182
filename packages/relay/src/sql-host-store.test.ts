import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BucketHost,
  type Env,
  type HostStore,
  MemoryHostStore,
  type Op,
  type PushMsg,
  type SqlDriver,
  type SqlValue,
} from '@mittsync/core';
import { checksumOf, encodeHlc } from '@mittsync/core/model';
import { allHostEntries, runHostStoreTests } from '@mittsync/core/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteDriver } from './node/sqlite-driver';
import { SqlHostStore } from './sql-host-store';

const dirs: string[] = [];
const drivers: SqliteDriver[] = [];
afterAll(() => {
  for (const d of drivers) d.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDb(): string {
  const d = mkdtempSync(join(tmpdir(), 'mittsync-store-'));
  dirs.push(d);
  return join(d, 'relay.db');
}

function seeded(seed: number): Env {
  let s = seed;
  const random = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  return { now: () => 1_700_000_000_000, setTimeout: () => 0, clearTimeout: () => undefined, random };
}

/** A deterministic workload of sets and deletes from three writers, some duplicated. */
function workload(seed: number, n: number): PushMsg[] {
  const env = seeded(seed);
  const seqs = new Map<string, number>();
  const frames: PushMsg[] = [];
  for (let f = 0; f < n; f++) {
    const origin = `w${Math.floor(env.random() * 3)}`;
    const ops: Op[] = [];
    for (let i = 0; i < 1 + Math.floor(env.random() * 20); i++) {
      const originSeq = (seqs.get(origin) ?? 0) + 1;
      seqs.set(origin, originSeq);
      const key = `k${Math.floor(env.random() * 300)}`;
      const hlc = encodeHlc(1_700_000_000_000 - Math.floor(env.random() * 10_000), originSeq, origin);
      ops.push(
        env.random() < 0.2
          ? { origin, originSeq, key, kind: 'del', hlc }
          : { origin, originSeq, key, kind: 'set', value: { f, i, s: 'é€😀' }, hlc },
      );
    }
    frames.push({ type: 'push', bucket: 'b', ops });
    if (env.random() < 0.1) frames.push({ type: 'push', bucket: 'b', ops }); // a re-push
  }
  return frames;
}

function run(store: HostStore, frames: PushMsg[], retain: number): BucketHost {
  // Tombstones older than 5 s (the workload's clocks spread over 10 s) may be purged.
  const host = new BucketHost({
    bucket: 'b',
    store,
    env: seeded(1),
    tombstoneRetainOps: retain,
    tombstoneRetainMs: 5000,
  });
  for (const f of frames) host.push(f.ops[0]?.origin as string, f);
  return host;
}

/** Where each store of the contract suite lives: its database file, driver and bucket. */
const homes = new Map<HostStore, { path: string; driver: SqliteDriver; bucket: string }>();

function openStore(path: string, bucket: string, driver = new SqliteDriver(path)): HostStore {
  drivers.push(driver);
  const store = new SqlHostStore(driver, bucket);
  homes.set(store, { path, driver, bucket });
  return store;
}

function homeOf(store: HostStore): { path: string; driver: SqliteDriver; bucket: string } {
  const home = homes.get(store);
  if (home === undefined) throw new Error('not a store of this suite');
  return home;
}

runHostStoreTests('SQLite file (better-sqlite3)', {
  create: () => openStore(tempDb(), 'b'),
  reopen: (previous) => {
    const { path, driver, bucket } = homeOf(previous);
    driver.close();
    return openStore(path, bucket);
  },
  sibling: (store) => {
    const { path, driver } = homeOf(store);
    return openStore(path, 'another-bucket', driver);
  },
});

describe('SqlHostStore', () => {
  it('behaves like the memory store under the same BucketHost workload (dedupe, LWW, purge)', () => {
    const frames = workload(7, 400);
    const mem = new MemoryHostStore();
    const sql = new SqlHostStore(new SqliteDriver(':memory:'), 'b');
    const a = run(mem, frames, 200);
    const b = run(sql, frames, 200);
    expect(b.state).toEqual(a.state);
    expect(b.state.purgedHlc).not.toBe(''); // the workload purged tombstones
    expect(allHostEntries(sql)).toEqual(allHostEntries(mem));
    expect(checksumOf(allHostEntries(sql))).toEqual(b.state.sum);
    for (const w of ['w0', 'w1', 'w2', 'nobody']) expect(sql.getReceived(w)).toBe(mem.getReceived(w));
    expect(sql.count()).toBe(mem.count());
    // Resumes: the seq-index plan and the key-order plan return the same pages.
    for (const since of [0, 5, b.state.head - 30, b.state.head - 1, b.state.head]) {
      for (const [after, until] of [
        [undefined, undefined],
        ['k1', 'k5'],
        ['k2', undefined],
      ] as const) {
        expect(sql.scan(since, after, until, 50)).toEqual(mem.scan(since, after, until, 50));
      }
    }
  });

  it('splits a bucket into ranges of similar size that cover every key', () => {
    const driver = new SqliteDriver(':memory:');
    const store = new SqlHostStore(driver, 'split');
    store.transaction(() => {
      for (let i = 0; i < 1000; i++)
        store.putEntry({ key: `key${String(i).padStart(4, '0')}`, hlc: 'h', seq: i + 1, value: i });
    });
    const splits = store.splitKeys(4);
    expect(splits).toEqual(['key0249', 'key0499', 'key0749']);
    expect(new SqlHostStore(driver, 'empty').splitKeys(4)).toEqual([]);
  });

  it('keeps buckets apart in one database and survives a reopen', () => {
    const path = tempDb();
    const d1 = new SqliteDriver(path);
    const x = run(new SqlHostStore(d1, 'x'), workload(1, 50), 1000);
    run(new SqlHostStore(d1, 'y'), workload(2, 50), 1000);
    const before = allHostEntries(new SqlHostStore(d1, 'x'));
    d1.close();
    const d2 = new SqliteDriver(path);
    const again = new BucketHost({ bucket: 'x', store: new SqlHostStore(d2, 'x'), env: seeded(9) });
    expect(again.state).toEqual(x.state);
    expect(allHostEntries(new SqlHostStore(d2, 'x'))).toEqual(before);
    expect(allHostEntries(new SqlHostStore(d2, 'x'))).not.toEqual(allHostEntries(new SqlHostStore(d2, 'y')));
    d2.close();
  });

  it('rolls a failed transaction back, and a failed nested one only to its savepoint', () => {
    const store = new SqlHostStore(new SqliteDriver(':memory:'), 'b');
    expect(() =>
      store.transaction(() => {
        store.putEntry({ key: 'a', hlc: 'h1', seq: 1, value: 1 });
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(store.getEntry('a')).toBeUndefined();
    store.transaction(() => {
      store.putEntry({ key: 'b', hlc: 'h1', seq: 1, value: 1 });
      expect(() =>
        store.transaction(() => {
          store.putEntry({ key: 'c', hlc: 'h1', seq: 2, value: 2 });
          throw new Error('inner');
        }),
      ).toThrow('inner');
    });
    expect(store.getEntry('b')?.value).toBe(1);
    expect(store.getEntry('c')).toBeUndefined();
  });

  it('keeps a key as TEXT only when it has a character past U+FFFF; reads the others from the sort key', () => {
    const driver = new SqliteDriver(':memory:');
    const store = new SqlHostStore(driver, 'b');
    const keys = ['plain', 'é日本！\uFFFF', 'nul\u0000inside', '\u0000', '😀', 'a😀b', '\u{10FFFF}'];
    store.transaction(() => {
      keys.forEach((key, i) => {
        store.putEntry({ key, hlc: 'h', seq: i + 1, value: i });
      });
    });
    const sorted = [...keys].sort();
    const rows = driver.exec<{ astral_key: string | null; type: string }>(
      'SELECT astral_key, typeof(sort_key) AS type FROM entries ORDER BY sort_key',
    );
    expect(rows.map((r) => r.astral_key)).toEqual(sorted.map((k) => (/[\uD800-\uDFFF]/.test(k) ? k : null)));
    expect(rows.map((r) => r.type)).toEqual(sorted.map(() => 'blob'));
    for (const [i, key] of keys.entries())
      expect(store.getEntry(key), key).toEqual({ key, hlc: 'h', seq: i + 1, value: i });
    expect(store.scan(0, undefined, undefined, 10).map((e) => e.key)).toEqual(sorted);
    expect(store.pageScan(0, undefined, undefined, 10).map((e) => e.key)).toEqual(sorted);
    expect(store.splitKeys(7)).toEqual(sorted.slice(0, 6));
  });

  it('looks keys up, pages and splits by range scans of the (b, sort_key) key, never a full scan', () => {
    const driver = new SqliteDriver(':memory:');
    const statements: { sql: string; params: SqlValue[] }[] = [];
    const recording: SqlDriver = {
      exec: (sql, ...params) => {
        statements.push({ sql, params });
        return driver.exec(sql, ...params);
      },
      transaction: (fn) => driver.transaction(fn),
    };
    const store = new SqlHostStore(recording, 'b');
    store.transaction(() => {
      for (let i = 0; i < 100; i++) store.putEntry({ key: `k${i}😀`, hlc: 'h', seq: i + 1, value: i });
      store.saveMeta({ epoch: 'e', head: 100, horizon: 0, purgedHlc: '', sum: { count: 100, a: 0, b: 0 } });
    });
    statements.length = 0;
    store.getEntry('k5😀');
    store.scan(0, undefined, undefined, 10);
    store.scan(0, 'k1', 'k5', 10);
    store.splitKeys(4);
    store.scan(95, 'k1', undefined, 10); // a resume: walks the seq index, then sorts the few
    store.purgeTombstones(50, 'z');
    const plans = statements
      .filter((st) => /FROM entries/.test(st.sql))
      .map((st) => ({
        sql: st.sql,
        plan: driver
          .exec<{ detail: string }>(`EXPLAIN QUERY PLAN ${st.sql}`, ...st.params)
          .map((r) => r.detail),
      }));
    const byKey = plans.filter((p) => p.sql.includes('sort_key'));
    expect(byKey.length).toBeGreaterThanOrEqual(7);
    expect(byKey.some((p) => p.sql.includes('INDEXED BY'))).toBe(true);
    for (const { sql, plan } of plans) expect(plan.join(' | '), sql).toMatch(/^SEARCH entries /);
    for (const { sql, plan } of byKey) {
      expect(plan[0], sql).toMatch(
        /^SEARCH entries USING (PRIMARY KEY \(b=\? AND sort_key|INDEX entries_by_seq)/,
      );
      // Only a resume sorts (the few entries changed since its checkpoint); pages in key
      // order come off the primary key already sorted.
      const sorts = plan.some((d) => d.includes('TEMP B-TREE'));
      expect(sorts, sql).toBe(sql.includes('INDEXED BY entries_by_seq'));
    }
  });

  it('reads pages the same through raw rows as through row objects', () => {
    const driver = new SqliteDriver(':memory:');
    const raw = new SqlHostStore(driver, 'b');
    // The same database through a driver without execRaw.
    const plain = new SqlHostStore(
      { exec: driver.exec.bind(driver), transaction: driver.transaction.bind(driver) },
      'b',
    );
    raw.transaction(() => {
      for (let i = 0; i < 50; i++)
        raw.putEntry(
          i % 7 === 3
            ? { key: `k${i}`, hlc: `h${i}`, seq: i + 1, deleted: true }
            : { key: `k${i}`, hlc: `h${i}`, seq: i + 1, value: { i, s: 'x'.repeat(i) } },
        );
    });
    const json = (x: unknown) => JSON.parse(JSON.stringify(x));
    for (const [since, after, until, limit] of [
      [0, undefined, undefined, 100],
      [0, 'k1', 'k3', 5],
      [30, undefined, undefined, 10],
    ] as const) {
      const a = raw.pageScan(since, after, until, limit);
      expect(a.length).toBeGreaterThan(0);
      expect(json(a)).toEqual(json(plain.pageScan(since, after, until, limit)));
    }
  });

  it('opens files in WAL mode with full sync and a 64 MB page cache', () => {
    const path = tempDb();
    const d = new SqliteDriver(path);
    expect(d.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(d.db.pragma('synchronous', { simple: true })).toBe(2);
    expect(d.db.pragma('cache_size', { simple: true })).toBe(-65536);
    d.close();
    const small = new SqliteDriver(path, { cacheMb: 8, synchronous: 'NORMAL' });
    expect(small.db.pragma('cache_size', { simple: true })).toBe(-8192);
    expect(small.db.pragma('synchronous', { simple: true })).toBe(1);
    small.close();
  });
});
