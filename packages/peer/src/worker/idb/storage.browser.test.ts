import { runReplicaStorageTests } from '@mittsync/core/testing';
import { describe, expect, it } from 'vitest';
import { runIdbLayoutTests } from './layout.cases.test';
import { IdbReplicaStorage } from './storage';

const run = Math.random().toString(36).slice(2, 8);
let n = 0;

// The ReplicaStorage contract on Chromium's real IndexedDB.
runReplicaStorageTests('IndexedDB (Chromium)', {
  create: async () => new IdbReplicaStorage({ name: `suite-${run}-${n++}` }),
  reopen: async (prev) => new IdbReplicaStorage({ name: (prev as IdbReplicaStorage).name }),
});

// The page and delta layout on the real thing.
runIdbLayoutTests(`layout-${run}`);

/** Creates database `name` at `version` the way an older release did, through the raw API. */
function oldDatabase(name: string, version: number, fill: (db: IDBDatabase) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const req = indexedDB.open(name, version);
    req.onupgradeneeded = () => {
      req.result.createObjectStore('identity').put({ replicaId: 'rA', clock: null }, 'self');
      fill(req.result);
    };
    req.onsuccess = () => {
      req.result.close();
      resolve();
    };
    req.onerror = () => reject(req.error);
  });
}

describe('IdbReplicaStorage in Chromium', () => {
  it('reports a database deleted underneath as STORAGE_LOST, never as an empty bucket', async () => {
    const lost: string[] = [];
    const s = new IdbReplicaStorage({ name: `lost-${run}`, onLost: (e) => lost.push(e.code) });
    await s.open();
    await s.saveIdentity({ replicaId: 'rA', clock: null });
    await s.commit({ bucket: 'b', puts: [{ key: 'k', hlc: 'h1', seq: 1, value: 1 }] });
    await new Promise<void>((resolve, reject) => {
      const req = indexedDB.deleteDatabase(s.name);
      req.onsuccess = () => resolve();
      req.onerror = () => reject(req.error);
    });
    expect(lost).toEqual(['STORAGE_LOST']);
    await expect(s.getEntries('b', ['k'])).rejects.toMatchObject({ code: 'STORAGE_LOST' });
    await expect(s.commit({ bucket: 'b', puts: [] })).rejects.toMatchObject({ code: 'STORAGE_LOST' });
    await s.close();
  });

  it('converts a version-1 database (values as objects) in place, keeping the outbox', async () => {
    const name = `v1-${run}`;
    // A version-1 database as the first release wrote it, through the raw API.
    await oldDatabase(name, 1, (db) => {
      db.createObjectStore('buckets', { keyPath: 'bucket' });
      db.createObjectStore('pages').put(
        {
          t: [
            ['a', 'h1', 1, 0, { n: 1, s: 'one' }],
            ['b', 'h2', 2, 1],
            ['c', 'h3', 3, 0, 'text'],
          ],
        },
        ['b1', ''],
      );
      db.createObjectStore('deltas').put([['d', 'h4', 4, 0, [1, null]]], ['b1', '']);
      db.createObjectStore('outbox').put(
        { origin: 'rA', originSeq: 1, key: 'd', kind: 'set', value: [1, null], hlc: 'h4' },
        ['b1', 1],
      );
    });
    const s = new IdbReplicaStorage({ name });
    expect((await s.open())?.replicaId).toBe('rA');
    expect(await s.scan('b1', { includeDeleted: true })).toEqual([
      { key: 'a', hlc: 'h1', seq: 1, value: { n: 1, s: 'one' } },
      { key: 'b', hlc: 'h2', seq: 2, deleted: true },
      { key: 'c', hlc: 'h3', seq: 3, value: 'text' },
      { key: 'd', hlc: 'h4', seq: 4, value: [1, null] },
    ]);
    expect((await s.loadOutbox('b1')).map((o) => o.key)).toEqual(['d']);
    await s.close();
  });

  it('converts a version-2 database (values as JSON text) in place, keeping the outbox', async () => {
    const name = `v2-${run}`;
    await oldDatabase(name, 2, (db) => {
      db.createObjectStore('buckets', { keyPath: 'bucket' });
      const pages = db.createObjectStore('pages');
      pages.put({ t: [['a', 'h1', 1, 0, '{"n":1,"s":"one"}']] }, ['b1', '']);
      pages.put(
        {
          t: [
            ['m', 'h2', 2, 1],
            ['n', 'h3', 3, 0, '"t\u00e9xt"'],
          ],
        },
        ['b1', 'm'],
      );
      db.createObjectStore('pageIndex').put(['', 'm'], 'b1');
      db.createObjectStore('deltas').put([['b', 'h4', 4, 0, '[1,null]']], ['b1', '']);
      db.createObjectStore('outbox').put(
        { origin: 'rA', originSeq: 1, key: 'b', kind: 'set', value: [1, null], hlc: 'h4' },
        ['b1', 1],
      );
    });
    const s = new IdbReplicaStorage({ name });
    expect((await s.open())?.replicaId).toBe('rA');
    expect(await s.scan('b1', { includeDeleted: true })).toEqual([
      { key: 'a', hlc: 'h1', seq: 1, value: { n: 1, s: 'one' } },
      { key: 'b', hlc: 'h4', seq: 4, value: [1, null] },
      { key: 'm', hlc: 'h2', seq: 2, deleted: true },
      { key: 'n', hlc: 'h3', seq: 3, value: 'téxt' },
    ]);
    expect(await s.getEntries('b1', ['n', 'b', 'zz'])).toEqual([
      { key: 'n', hlc: 'h3', seq: 3, value: 'téxt' },
      { key: 'b', hlc: 'h4', seq: 4, value: [1, null] },
      undefined,
    ]);
    // Writes after the conversion land in the converted pages.
    await s.commit({ bucket: 'b1', puts: [{ key: 'a', hlc: 'h5', seq: 5, value: { n: 2 } }] });
    expect((await s.getEntries('b1', ['a']))[0]?.value).toEqual({ n: 2 });
    expect((await s.loadOutbox('b1')).map((o) => o.key)).toEqual(['b']);
    await s.close();
  });

  it('reopens once after the connection was closed by the browser', async () => {
    const s = new IdbReplicaStorage({ name: `reopen-${run}` });
    await s.open();
    await s.saveIdentity({ replicaId: 'rA', clock: null });
    await s.commit({ bucket: 'b', puts: [{ key: 'k', hlc: 'h1', seq: 1, value: 1 }] });
    // Close the connection behind the store's back, as the browser does on some failures.
    (s as unknown as { conn: { db: IDBDatabase } }).conn.db.close();
    await s.commit({ bucket: 'b', puts: [{ key: 'k2', hlc: 'h2', seq: 2, value: 2 }] });
    expect((await s.getEntries('b', ['k', 'k2'])).map((e) => e?.value)).toEqual([1, 2]);
    await s.close();
  });
});
