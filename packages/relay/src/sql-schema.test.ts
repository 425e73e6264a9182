import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Entry, encodeValueView, type HostMeta, PURGED_SLOTS, type SqlDriver } from '@mittsync/core';
import { encodeHlc, keyOrder } from '@mittsync/core/model';
import { allHostEntries } from '@mittsync/core/testing';
import { Packr } from 'msgpackr';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteDriver } from './node/sqlite-driver';
import { SqlHostStore } from './sql-host-store';
import { ensureSchema, MIGRATION_BATCH_ROWS, SCHEMA_VERSION } from './sql-schema';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDb(): string {
  const d = mkdtempSync(join(tmpdir(), 'mittsync-schema-'));
  dirs.push(d);
  return join(d, 'relay.db');
}

/** The tables exactly as schema 2 created them (sql-host-store.ts before schema 3). */
const SCHEMA_2 = [
  `CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS buckets (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    epoch TEXT,
    head INTEGER NOT NULL DEFAULT 0,
    horizon INTEGER NOT NULL DEFAULT 0,
    purged_hlc TEXT NOT NULL DEFAULT '',
    sum_count INTEGER NOT NULL DEFAULT 0,
    sum_a INTEGER NOT NULL DEFAULT 0,
    sum_b INTEGER NOT NULL DEFAULT 0
  )`,
  `CREATE TABLE IF NOT EXISTS entries (
    b INTEGER NOT NULL,
    key TEXT NOT NULL,
    hlc TEXT NOT NULL,
    seq INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    value BLOB,
    PRIMARY KEY (b, key)
  ) WITHOUT ROWID`,
  `CREATE INDEX IF NOT EXISTS entries_by_seq ON entries (b, seq, key)`,
  `CREATE TABLE IF NOT EXISTS received (
    b INTEGER NOT NULL,
    origin TEXT NOT NULL,
    origin_seq INTEGER NOT NULL,
    PRIMARY KEY (b, origin)
  ) WITHOUT ROWID`,
];

/** Keys where UTF-8 (schema 2's order) and UTF-16 code units (the protocol's) disagree. */
const PREFIXES = ['', '！', '😀', '\uFFFF', '\uE000', 'a', 'k😀', 'k！', '日本', '\u{10FFFF}'];

/** A bucket's contents: more entries than a migration batch, every tenth a tombstone. */
function contents(n: number, tag: string): Entry[] {
  return Array.from({ length: n }, (_, i) => {
    const key = `${PREFIXES[i % PREFIXES.length]}${tag}${i}`;
    const hlc = encodeHlc(1_700_000_000_000 + i, 0, 'w1');
    return i % 10 === 3
      ? { key, hlc, seq: i + 1, deleted: true }
      : { key, hlc, seq: i + 1, value: { i, s: `${tag}😀！`, list: [i, null] } };
  });
}

/** Writes a schema-2 database as the schema-2 store did: its DDL, then rows as it stored them. */
function writeSchema2(path: string, buckets: { name: string; meta: HostMeta; entries: Entry[] }[]): void {
  const d = new SqliteDriver(path);
  d.transaction(() => {
    for (const stmt of SCHEMA_2) d.exec(stmt);
    d.exec(`INSERT INTO meta (name, value) VALUES ('schema_version', '2')`);
    for (const [i, { name, meta, entries }] of buckets.entries()) {
      const b = i + 1;
      d.exec(
        'INSERT INTO buckets (id, name, epoch, head, horizon, purged_hlc, sum_count, sum_a, sum_b) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
        b,
        name,
        meta.epoch,
        meta.head,
        meta.horizon,
        meta.purgedHlc,
        meta.sum.count,
        meta.sum.a,
        meta.sum.b,
      );
      for (const e of entries) {
        d.exec(
          'INSERT INTO entries (b, key, hlc, seq, deleted, value) VALUES (?, ?, ?, ?, ?, ?)',
          b,
          e.key,
          e.hlc,
          e.seq,
          e.deleted ? 1 : 0,
          e.deleted ? null : encodeValueView(e.value ?? null),
        );
      }
      d.exec('INSERT INTO received (b, origin, origin_seq) VALUES (?, ?, ?)', b, 'w1', entries.length);
    }
  });
  d.close();
}

const metaOf = (entries: Entry[], epoch: string): HostMeta => ({
  epoch,
  head: entries.length,
  horizon: 5,
  purgedHlc: encodeHlc(1_699_999_999_000, 0, 'w2'),
  sum: { count: entries.filter((e) => !e.deleted).length, a: 0xfffffffe, b: 12345 },
});

describe('relay SQL schema', () => {
  it('converts a schema-2 database in place: every entry kept, then ordered by UTF-16 code units', () => {
    const path = tempDb();
    const big = contents(MIGRATION_BATCH_ROWS * 2 + 37, 'b');
    const small = contents(30, 'o');
    writeSchema2(path, [
      { name: 'b', meta: metaOf(big, 'epoch-b'), entries: big },
      { name: 'other', meta: metaOf(small, 'epoch-o'), entries: small },
    ]);
    const driver = new SqliteDriver(path);
    const store = new SqlHostStore(driver, 'b');
    expect(driver.exec(`SELECT value FROM meta WHERE name = 'schema_version'`)).toEqual([
      { value: String(SCHEMA_VERSION) },
    ]);
    expect(store.loadMeta()).toEqual(metaOf(big, 'epoch-b'));
    // Schema 3 kept only the greatest purged HLC: every key slot of the purged-key record gets
    // it, so no write older than it to an absent key is wrongly accepted.
    const slots = store.loadPurgedSlots();
    expect(slots.length).toBe(PURGED_SLOTS);
    expect(new Set(slots.map(([, h]) => h))).toEqual(new Set([metaOf(big, 'x').purgedHlc]));
    expect(store.listReplicas()).toEqual([]);
    expect(store.getReceived('w1')).toBe(big.length);
    expect(store.count()).toBe(big.length);
    // Every entry, values and tombstones, read back in core's key order.
    const sorted = [...big].sort(keyOrder);
    expect(allHostEntries(store)).toEqual(sorted);
    for (const e of big.slice(0, 40)) expect(store.getEntry(e.key), e.key).toEqual(e);
    const keys = sorted.map((e) => e.key);
    for (const [after, until] of [
      ['😀b2', '\uE000b4'],
      ['a', '！b1'],
    ] as const) {
      const want = keys.filter((k) => k > after && k <= until);
      expect(want.length).toBeGreaterThan(10);
      expect(store.scan(0, after, until, 10_000).map((e) => e.key)).toEqual(want);
    }
    expect(store.scan(big.length - 20, undefined, undefined, 100).map((e) => e.key)).toEqual(
      sorted.filter((e) => e.seq > big.length - 20).map((e) => e.key),
    );
    const other = new SqlHostStore(driver, 'other');
    expect(other.loadMeta()).toEqual(metaOf(small, 'epoch-o'));
    expect(allHostEntries(other)).toEqual([...small].sort(keyOrder));
    // The new tables: keyed and indexed by the sort key.
    const table = driver.exec<{ sql: string }>(`SELECT sql FROM sqlite_master WHERE name = 'entries'`)[0];
    expect(table?.sql).toMatch(/PRIMARY KEY \(b, sort_key\)\s*\) WITHOUT ROWID/);
    const bySeq = driver.exec<{ name: string }>(`SELECT name FROM pragma_index_info('entries_by_seq')`);
    expect(bySeq.map((c) => c.name)).toEqual(['b', 'seq', 'sort_key']);
    expect(driver.exec(`SELECT name FROM sqlite_master WHERE name = 'entries_next'`)).toEqual([]);
    const astral = driver.exec<{ k: string }>(
      'SELECT astral_key AS k FROM entries WHERE astral_key IS NOT NULL',
    );
    expect(astral.map((r) => r.k).sort()).toEqual(
      [...big, ...small]
        .map((e) => e.key)
        .filter((k) => /[\uD800-\uDFFF]/.test(k))
        .sort(),
    );
    // Writes after the migration update the entries it copied.
    const first = sorted[0] as Entry;
    store.transaction(() => store.putEntry({ key: first.key, hlc: 'h', seq: big.length + 1, value: 'new' }));
    expect(store.getEntry(first.key)?.value).toBe('new');
    expect(store.count()).toBe(big.length);
    driver.close();
  });

  it('leaves a schema-2 database as it was when the migration fails midway', () => {
    const path = tempDb();
    const big = contents(MIGRATION_BATCH_ROWS + 100, 'b');
    writeSchema2(path, [{ name: 'b', meta: metaOf(big, 'e'), entries: big }]);
    const driver = new SqliteDriver(path);
    let copied = 0;
    // The same database through a driver that fails once the second batch is being copied.
    const failing: SqlDriver = {
      exec: (sql, ...params) => {
        if (sql.startsWith('INSERT INTO entries_next') && ++copied > MIGRATION_BATCH_ROWS + 10)
          throw new Error('disk full');
        return driver.exec(sql, ...params);
      },
      transaction: (fn) => driver.transaction(fn),
    };
    expect(() => ensureSchema(failing)).toThrow('disk full');
    expect(driver.exec(`SELECT value FROM meta WHERE name = 'schema_version'`)).toEqual([{ value: '2' }]);
    expect(driver.exec(`SELECT name FROM pragma_table_info('entries')`).map((c) => c.name)).not.toContain(
      'sort_key',
    );
    expect(driver.exec(`SELECT name FROM sqlite_master WHERE name = 'entries_next'`)).toEqual([]);
    expect(driver.exec(`SELECT count(*) AS n FROM entries`)).toEqual([{ n: big.length }]);
    // Opened again, it converts.
    expect(allHostEntries(new SqlHostStore(driver, 'b'))).toEqual([...big].sort(keyOrder));
    driver.close();
  });

  it('converts a schema-1 database (entries in a rowid table) in place, keeping every entry', () => {
    const path = tempDb();
    const d = new SqliteDriver(path);
    // The tables as the first release created them.
    d.exec(`CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)`);
    d.exec(`INSERT INTO meta (name, value) VALUES ('schema_version', '1')`);
    d.exec(`CREATE TABLE buckets (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, epoch TEXT,
      head INTEGER NOT NULL DEFAULT 0, horizon INTEGER NOT NULL DEFAULT 0, purged_hlc TEXT NOT NULL DEFAULT '',
      sum_count INTEGER NOT NULL DEFAULT 0, sum_a INTEGER NOT NULL DEFAULT 0, sum_b INTEGER NOT NULL DEFAULT 0)`);
    d.exec(`CREATE TABLE entries (b INTEGER NOT NULL, key TEXT NOT NULL, hlc TEXT NOT NULL, seq INTEGER NOT NULL,
      deleted INTEGER NOT NULL, value BLOB, PRIMARY KEY (b, key))`);
    d.exec(`CREATE INDEX entries_by_seq ON entries (b, seq, key)`);
    d.exec(`CREATE TABLE received (b INTEGER NOT NULL, origin TEXT NOT NULL, origin_seq INTEGER NOT NULL,
      PRIMARY KEY (b, origin)) WITHOUT ROWID`);
    d.exec(`INSERT INTO buckets (id, name, epoch, head) VALUES (1, 'b', 'e1', 3)`);
    const insert = 'INSERT INTO entries (b, key, hlc, seq, deleted, value) VALUES (1, ?, ?, ?, ?, ?)';
    d.exec(insert, 'm', 'h3', 3, 0, new Packr({ useRecords: false }).pack({ n: 3 }));
    d.exec(insert, 'a', 'h1', 1, 0, new Packr({ useRecords: false }).pack('one'));
    d.exec(insert, 'd', 'h2', 2, 1, null);
    d.close();
    const driver = new SqliteDriver(path);
    const store = new SqlHostStore(driver, 'b');
    expect(store.loadMeta()).toMatchObject({ epoch: 'e1', head: 3 });
    expect(store.scan(0, undefined, undefined, 10)).toEqual([
      { key: 'a', hlc: 'h1', seq: 1, value: 'one' },
      { key: 'd', hlc: 'h2', seq: 2, deleted: true },
      { key: 'm', hlc: 'h3', seq: 3, value: { n: 3 } },
    ]);
    expect(store.scan(2, undefined, undefined, 10).map((e) => e.key)).toEqual(['m']);
    const table = driver.exec<{ sql: string }>(`SELECT sql FROM sqlite_master WHERE name = 'entries'`)[0];
    expect(table?.sql).toMatch(/WITHOUT ROWID/);
    expect(driver.exec(`SELECT name FROM sqlite_master WHERE name = 'entries_by_seq'`)).toHaveLength(1);
    expect(driver.exec(`SELECT value FROM meta WHERE name = 'schema_version'`)).toEqual([
      { value: String(SCHEMA_VERSION) },
    ]);
    store.putEntry({ key: 'b', hlc: 'h4', seq: 4, value: 4 });
    expect(store.getEntry('b')?.value).toBe(4);
    driver.close();
  });

  it("converts a schema-4 database: each origin's refusals are kept beside its counter", () => {
    const path = tempDb();
    const d = new SqliteDriver(path);
    const before = new SqlHostStore(d, 'b');
    before.transaction(() => before.setReceived('w1', 12));
    // Schema 4's received table, as a relay of that version left it.
    d.exec('ALTER TABLE received DROP COLUMN refused');
    d.exec(`UPDATE meta SET value = '4' WHERE name = 'schema_version'`);
    d.close();
    const driver = new SqliteDriver(path);
    const store = new SqlHostStore(driver, 'b');
    expect(driver.exec(`SELECT value FROM meta WHERE name = 'schema_version'`)).toEqual([{ value: '5' }]);
    expect(store.getReceived('w1')).toBe(12);
    expect(store.getRefused('w1')).toEqual([]);
    const refusal = { originSeq: 12, code: 'CLOCK_DRIFT' as const, message: 'an hour ahead' };
    store.transaction(() => store.setRefused('w1', [refusal]));
    expect(store.getRefused('w1')).toEqual([refusal]);
    // A value that does not read as refusals reads as none.
    driver.exec(`UPDATE received SET refused = '{"not": "a list"}'`);
    expect(store.getRefused('w1')).toEqual([]);
    driver.close();
  });

  it('refuses a database written by a newer schema, and a second relay on the same file', () => {
    const path = tempDb();
    const d = new SqliteDriver(path);
    ensureSchema(d);
    d.exec(`UPDATE meta SET value = '99' WHERE name = 'schema_version'`);
    expect(() => new SqliteDriver(path)).toThrow(/another relay/);
    d.close();
    expect(() => new SqlHostStore(new SqliteDriver(path), 'b')).toThrow(/schema version 99/);
  });
});
