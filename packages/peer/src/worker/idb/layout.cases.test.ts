import type { Entry, Op } from '@mittsync/core';
import { prng } from '@mittsync/core/testing';
import { describe, expect, it } from 'vitest';
import { DELTA_GROUP_PAGES } from './bucket-index';
import { IdbReplicaStorage } from './storage';

/**
 * Tests of the page and delta layout, run on fake-indexeddb (fast, in Node) and on Chromium's
 * real IndexedDB. `prefix` keeps each run's database names apart.
 */
export function runIdbLayoutTests(prefix: string): void {
  let n = 0;
  describe('IdbReplicaStorage pages', () => {
    it('matches a plain map through random batches that split pages', async () => {
      const rand = prng(42);
      let s = new IdbReplicaStorage({ name: `${prefix}-model-${n++}`, cacheEntries: 1000 });
      await s.open();
      const model = new Map<string, Entry>();
      for (let round = 0; round < 400; round++) {
        if (round % 90 === 89) {
          // Reopen now and then: deltas come back from their records, then fold or move on.
          await s.close();
          s = new IdbReplicaStorage({ name: s.name, cacheEntries: 1000 });
          await s.open();
        }
        // Mostly small batches (deltas, folds), now and then a bulk one (page merges, splits).
        const size = round % 20 === 0 ? Math.floor(rand() * 3000) + 1 : Math.floor(rand() * 30) + 1;
        const puts: Entry[] = [];
        for (let i = 0; i < size; i++) {
          const key = `k${Math.floor(rand() * 20_000)
            .toString()
            .padStart(5, '0')}`;
          const e: Entry =
            rand() < 0.1
              ? { key, hlc: `h${round}`, seq: round, deleted: true }
              : { key, hlc: `h${round}`, seq: round, value: { round, i } };
          puts.push(e);
          model.set(key, e);
        }
        await s.commit({ bucket: 'b', puts });
      }
      const sorted = [...model.values()].sort((a, b) => (a.key < b.key ? -1 : 1));
      expect(await s.scan('b', { includeDeleted: true })).toEqual(sorted);
      expect(await s.scan('b', {})).toEqual(sorted.filter((e) => !e.deleted));
      expect(await s.scan('b', { prefix: 'k012', includeDeleted: true })).toEqual(
        sorted.filter((e) => e.key.startsWith('k012')),
      );
      expect(await s.scan('b', { start: 'k05', end: 'k07', limit: 300, includeDeleted: true })).toEqual(
        sorted.filter((e) => e.key >= 'k05' && e.key < 'k07').slice(0, 300),
      );
      const probe = ['k00000', 'k19999', 'k10000', 'nope', ...sorted.slice(0, 50).map((e) => e.key)];
      expect(await s.getEntries('b', probe)).toEqual(probe.map((k) => model.get(k)));
      await s.close();
      // The same again from disk, with a cold cache.
      const t = new IdbReplicaStorage({ name: s.name });
      await t.open();
      expect(await t.scan('b', { includeDeleted: true })).toEqual(sorted);
      expect(await t.getEntries('b', probe)).toEqual(probe.map((k) => model.get(k)));
      await t.close();
    }, 60_000);
  });

  describe('IdbReplicaStorage delta records', () => {
    const count = (name: string, store: string) =>
      new Promise<number>((resolve, reject) => {
        const req = indexedDB.open(name);
        req.onerror = () => reject(req.error);
        req.onsuccess = () => {
          const db = req.result;
          const c = db.transaction(store).objectStore(store).count();
          c.onsuccess = () => {
            db.close();
            resolve(c.result);
          };
        };
      });

    it('starts new pages for runs of keys after a well-filled page instead of rewriting it', async () => {
      const s = new IdbReplicaStorage({ name: `${prefix}-append-${n++}` });
      await s.open();
      const key = (i: number) => `k${String(i).padStart(6, '0')}`;
      const text = 'x'.repeat(140);
      const run = (from: number, hlc: string): Entry[] =>
        Array.from({ length: 1000 }, (_, j) => ({
          key: key(from + j),
          hlc,
          seq: from + j + 1,
          value: { text },
        }));
      // A download's runs, in key order: each lands after the page the previous one made.
      const runs = [0, 1000, 2000, 3000].map((from) => run(from, 'h1'));
      for (const r of runs) await s.commit({ bucket: 'b', puts: r });
      expect(await count(s.name, 'pages')).toBe(4);
      // Keys between existing ones take the merge path again; one key after everything too.
      const between = Array.from({ length: 600 }, (_, j) => ({
        key: `${key(j * 5)}a`,
        hlc: 'h2',
        seq: 10_000 + j,
        value: { j },
      }));
      await s.commit({ bucket: 'b', puts: between });
      await s.commit({ bucket: 'b', puts: [{ key: 'z', hlc: 'h3', seq: 20_000, value: 1 }] });
      await s.close();
      const t = new IdbReplicaStorage({ name: s.name });
      await t.open();
      const want = [...runs.flat(), ...between, { key: 'z', hlc: 'h3', seq: 20_000, value: 1 }].sort(
        (a, b) => (a.key < b.key ? -1 : 1),
      );
      expect(await t.scan('b', {})).toEqual(want);
      expect(await t.getEntries('b', [key(999), key(1000), key(3999), 'z'])).toEqual(
        [key(999), key(1000), key(3999), 'z'].map((k) => want.find((e) => e.key === k)),
      );
      await t.close();
    }, 60_000);

    it('writes scattered updates into one record per run of pages, and reads them back', async () => {
      const s = new IdbReplicaStorage({ name: `${prefix}-deltas-${n++}` });
      await s.open();
      const key = (i: number) => `k${String(i).padStart(6, '0')}`;
      const bulk: Entry[] = [];
      for (let i = 0; i < 20_000; i++) bulk.push({ key: key(i), hlc: 'h1', seq: i + 1, value: { i } });
      await s.commit({ bucket: 'b', puts: bulk });
      const pages = await count(s.name, 'pages');
      expect(pages).toBeGreaterThan(16);
      // One update per ~66 keys: some in every page.
      const scattered: Entry[] = [];
      for (let i = 0; i < 20_000; i += 66)
        scattered.push({ key: key(i), hlc: 'h2', seq: 30_000 + i, value: { i, v: 2 } });
      await s.commit({ bucket: 'b', puts: scattered });
      const records = await count(s.name, 'deltas');
      expect(records).toBeLessThanOrEqual(Math.ceil(pages / DELTA_GROUP_PAGES));
      expect(records).toBeGreaterThan(1);
      await s.close();
      const t = new IdbReplicaStorage({ name: s.name });
      await t.open();
      const want = new Map(bulk.map((e) => [e.key, e]));
      for (const e of scattered) want.set(e.key, e);
      expect(await t.scan('b', {})).toEqual([...want.values()]);
      // A bulk rewrite folds every page: the delta records go away with their deltas.
      const again = bulk.map((e) => ({ ...e, hlc: 'h3', seq: e.seq + 50_000 }));
      await t.commit({ bucket: 'b', puts: again });
      expect(await count(t.name, 'deltas')).toBe(0);
      expect(await t.scan('b', {})).toEqual(again);
      await t.close();
    }, 60_000);
  });

  describe('IdbReplicaStorage outbox', () => {
    const op = (originSeq: number): Op => ({
      origin: 'rA',
      originSeq,
      key: `k${originSeq}`,
      kind: 'set',
      value: { originSeq },
      hlc: `h${String(originSeq).padStart(6, '0')}`,
    });
    const seqs = (ops: Op[]) => ops.map((o) => o.originSeq);
    /** Every record of `store` in database `name`, with its key (the version it is at, too). */
    const dump = (name: string, store: string) =>
      new Promise<{ version: number; rows: [IDBValidKey, unknown][] }>((resolve, reject) => {
        const req = indexedDB.open(name);
        req.onerror = () => reject(req.error);
        req.onsuccess = () => {
          const db = req.result;
          const rows: [IDBValidKey, unknown][] = [];
          const c = db.transaction(store).objectStore(store).openCursor();
          c.onsuccess = () => {
            const cur = c.result;
            if (cur === null) {
              db.close();
              resolve({ version: db.version, rows });
              return;
            }
            rows.push([cur.primaryKey, cur.value]);
            cur.continue();
          };
        };
      });

    it('keeps the local writes of a commit in one record; an ack ending inside one keeps the rest', async () => {
      const s = new IdbReplicaStorage({ name: `${prefix}-outbox-${n++}` });
      await s.open();
      const want: number[] = [];
      const add = async (from: number, count: number) => {
        const ops = Array.from({ length: count }, (_, j) => op(from + j));
        await s.commit({ bucket: 'b', outboxAdd: ops });
        want.push(...seqs(ops));
      };
      await add(1, 1000);
      await add(1001, 5);
      await add(1006, 3000); // more than one record's worth
      expect((await dump(s.name, 'outbox')).rows.length).toBe(4);
      const ack = async (upTo: number) => {
        await s.commit({ bucket: 'b', outboxAckUpTo: upTo });
        want.splice(0, want.length, ...want.filter((x) => x > upTo));
      };
      await ack(400); // inside the first run
      expect(seqs(await s.loadOutbox('b'))).toEqual(want);
      await ack(1003); // through the first run, into the second
      await ack(1003); // again: nothing changes
      expect(seqs(await s.loadOutbox('b'))).toEqual(want);
      await s.close();
      const t = new IdbReplicaStorage({ name: s.name });
      await t.open();
      expect(seqs(await t.loadOutbox('b'))).toEqual(want);
      expect((await t.loadOutbox('b'))[0]).toEqual(op(1004));
      await t.commit({ bucket: 'b', outboxReplace: [op(7), op(3), op(5)] });
      expect(seqs(await t.loadOutbox('b'))).toEqual([3, 5, 7]);
      await t.commit({ bucket: 'b', outboxAckUpTo: 4000 });
      expect(await t.loadOutbox('b')).toEqual([]);
      expect((await dump(t.name, 'outbox')).rows).toEqual([]);
      await t.close();
    }, 60_000);

    it('opens a version-3 database as it is: pages unconverted, one outbox record per op', async () => {
      // Written by today's code, then copied into a database at version 3 with the outbox as
      // version 3 kept it (the page and delta format is the same in both).
      const s = new IdbReplicaStorage({ name: `${prefix}-v3-src-${n++}` });
      await s.open();
      const entries: Entry[] = Array.from({ length: 50 }, (_, i) => ({
        key: `k${String(i).padStart(3, '0')}`,
        hlc: 'h1',
        seq: i + 1,
        value: { i },
      }));
      await s.commit({ bucket: 'b', puts: entries, outboxAdd: [1, 2, 3, 4].map(op) });
      await s.close();
      const stores = ['identity', 'buckets', 'pages', 'deltas', 'pageIndex', 'outbox'];
      const copied = await Promise.all(stores.map((st) => dump(s.name, st)));
      expect(copied[0]?.version).toBe(4);
      const name = `${prefix}-v3-${n++}`;
      await new Promise<void>((resolve, reject) => {
        const req = indexedDB.open(name, 3);
        req.onerror = () => reject(req.error);
        req.onupgradeneeded = () => {
          const db = req.result;
          stores.forEach((st, i) => {
            const store = db.createObjectStore(st, st === 'buckets' ? { keyPath: 'bucket' } : {});
            for (const [key, value] of copied[i]?.rows ?? []) {
              if (st === 'outbox')
                for (const o of value as Op[]) store.put(o, [(key as [string, number])[0], o.originSeq]);
              else if (st === 'buckets') store.put(value);
              else store.put(value, key);
            }
          });
        };
        req.onsuccess = () => {
          req.result.close();
          resolve();
        };
      });
      const t = new IdbReplicaStorage({ name });
      await t.open();
      expect(await t.scan('b', {})).toEqual(entries);
      expect(seqs(await t.loadOutbox('b'))).toEqual([1, 2, 3, 4]);
      await t.commit({ bucket: 'b', outboxAckUpTo: 2, outboxAdd: [op(5), op(6)] });
      expect(seqs(await t.loadOutbox('b'))).toEqual([3, 4, 5, 6]);
      await t.close();
      expect((await dump(name, 'outbox')).version).toBe(4);
    }, 60_000);

    it('leaves an older database as it was when converting it fails', async () => {
      // Version 2: pages of entry tuples with JSON values. The second page is damaged.
      const name = `${prefix}-v2-bad-${n++}`;
      const good = [['a', 'h1', 1, 0, '{"x":1}']];
      await new Promise<void>((resolve, reject) => {
        const req = indexedDB.open(name, 2);
        req.onerror = () => reject(req.error);
        req.onupgradeneeded = () => {
          const db = req.result;
          for (const st of ['identity', 'pages', 'deltas', 'pageIndex', 'outbox']) db.createObjectStore(st);
          db.createObjectStore('buckets', { keyPath: 'bucket' });
          const pages = req.transaction?.objectStore('pages');
          pages?.put(good, ['b', '']);
          pages?.put('not a page', ['b', 'm']);
        };
        req.onsuccess = () => {
          req.result.close();
          resolve();
        };
      });
      const s = new IdbReplicaStorage({ name });
      await expect(s.open()).rejects.toBeDefined();
      await s.close().catch(() => undefined);
      const after = await dump(name, 'pages');
      expect(after.version).toBe(2);
      expect(after.rows.map(([, v]) => v)).toEqual([good, 'not a page']);
    }, 60_000);
  });
}
