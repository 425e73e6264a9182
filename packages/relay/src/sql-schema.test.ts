import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Packr } from 'msgpackr';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteDriver } from './node/sqlite-driver';
import { SqlHostStore } from './sql-host-store';
import { ensureSchema } from './sql-schema';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDb(): string {
  const d = mkdtempSync(join(tmpdir(), 'mittsync-schema-'));
  dirs.push(d);
  return join(d, 'relay.db');
}

describe('relay SQL schema', () => {
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
    expect(driver.exec(`SELECT value FROM meta WHERE name = 'schema_version'`)).toEqual([{ value: '2' }]);
    store.putEntry({ key: 'b', hlc: 'h4', seq: 4, value: 4 });
    expect(store.getEntry('b')?.value).toBe(4);
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
