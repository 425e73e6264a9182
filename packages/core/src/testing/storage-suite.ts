import { describe, expect, it } from 'vitest';
import { type ColumnRange, columnsOf, rangeEntries } from '../columns';
import { type Entry, keyOrder, type Op } from '../model';
import { plainEntry } from '../packed';
import { type BucketMeta, newBucketMeta, type ReplicaStorage } from '../storage';

/** How a storage suite gets a store: `reopen` simulates a restart on the same data when the store persists. */
export interface StorageSetup {
  /** A fresh, empty store. */
  create(): Promise<ReplicaStorage>;
  /** The same data opened again, after `close()` (only for persistent stores). */
  reopen?(previous: ReplicaStorage): Promise<ReplicaStorage>;
}

const H = (n: number, node = 'rA') => `${n.toString(16).padStart(12, '0')}0000${node}`;

function meta(bucket: string, patch: Partial<BucketMeta> = {}): BucketMeta {
  return { ...newBucketMeta(bucket), ...patch };
}

function entry(key: string, n: number, value: unknown = { n }, seq = n): Entry {
  return { key, hlc: H(n), seq, value: value as Entry['value'] };
}

function op(key: string, originSeq: number): Op {
  return { origin: 'rA', originSeq, key, kind: 'set', value: originSeq, hlc: H(originSeq) };
}

/**
 * The acceptance suite every {@link ReplicaStorage} runs (memory, IndexedDB in Chromium,
 * IndexedDB on fake-indexeddb): identity, atomic batches, outbox order, scans, reset.
 *
 * @example
 * ```ts
 * runReplicaStorageTests('memory', { create: async () => new MemoryReplicaStorage() });
 * ```
 */
export function runReplicaStorageTests(name: string, setup: StorageSetup): void {
  describe(`ReplicaStorage contract: ${name}`, () => {
    it('starts without an identity and keeps the one it is given', async () => {
      const s = await setup.create();
      expect(await s.open()).toBeNull();
      await s.saveIdentity({ replicaId: 'rA', clock: null });
      expect(await s.open()).toEqual({ replicaId: 'rA', clock: null });
      await s.close();
    });

    it('commits entries, outbox and meta together and reads them back', async () => {
      const s = await setup.create();
      await s.open();
      await s.saveIdentity({ replicaId: 'rA', clock: null });
      await s.commit({
        bucket: 'b',
        puts: [entry('k1', 1), entry('k2', 2)],
        outboxAdd: [op('k1', 1), op('k2', 2)],
        meta: meta('b', { nextOriginSeq: 3 }),
        clock: H(2),
      });
      expect(await s.getEntries('b', ['k2', 'missing', 'k1'])).toEqual([
        entry('k2', 2),
        undefined,
        entry('k1', 1),
      ]);
      expect((await s.loadOutbox('b')).map((o) => o.originSeq)).toEqual([1, 2]);
      expect((await s.loadBucket('b'))?.nextOriginSeq).toBe(3);
      expect((await s.open())?.clock).toBe(H(2));
      expect((await s.listBuckets()).map((m) => m.bucket)).toEqual(['b']);
      await s.close();
    });

    it('keeps buckets apart', async () => {
      const s = await setup.create();
      await s.open();
      await s.commit({ bucket: 'x', puts: [entry('k', 1, 'x')], meta: meta('x') });
      await s.commit({ bucket: 'y', puts: [entry('k', 2, 'y')], meta: meta('y') });
      expect((await s.getEntries('x', ['k']))[0]?.value).toBe('x');
      expect((await s.getEntries('y', ['k']))[0]?.value).toBe('y');
      expect(await s.scan('x', {})).toHaveLength(1);
      await s.close();
    });

    it('overwrites entries and stores tombstones', async () => {
      const s = await setup.create();
      await s.open();
      await s.commit({ bucket: 'b', puts: [entry('k', 1)], meta: meta('b') });
      await s.commit({ bucket: 'b', puts: [{ key: 'k', hlc: H(2), seq: 2, deleted: true }] });
      expect(await s.getEntries('b', ['k'])).toEqual([{ key: 'k', hlc: H(2), seq: 2, deleted: true }]);
      expect(await s.scan('b', {})).toEqual([]);
      expect(await s.scan('b', { includeDeleted: true })).toHaveLength(1);
      await s.close();
    });

    it('acknowledges outbox ops by prefix and replaces the outbox', async () => {
      const s = await setup.create();
      await s.open();
      await s.commit({ bucket: 'b', outboxAdd: [1, 2, 3, 4].map((n) => op(`k${n}`, n)), meta: meta('b') });
      await s.commit({ bucket: 'b', outboxAckUpTo: 2 });
      expect((await s.loadOutbox('b')).map((o) => o.originSeq)).toEqual([3, 4]);
      await s.commit({ bucket: 'b', outboxReplace: [op('k9', 7)] });
      expect((await s.loadOutbox('b')).map((o) => o.originSeq)).toEqual([7]);
      await s.close();
    });

    it('scans by prefix and by range, in key order, with a limit', async () => {
      const s = await setup.create();
      await s.open();
      const keys = ['a/1', 'a/2', 'a/3', 'b/1', 'b/2', 'c'];
      await s.commit({ bucket: 'b', puts: keys.map((k, i) => entry(k, i + 1)).reverse(), meta: meta('b') });
      expect((await s.scan('b', { prefix: 'a/' })).map((e) => e.key)).toEqual(['a/1', 'a/2', 'a/3']);
      expect((await s.scan('b', { start: 'a/2', end: 'b/2' })).map((e) => e.key)).toEqual([
        'a/2',
        'a/3',
        'b/1',
      ]);
      expect((await s.scan('b', { limit: 2 })).map((e) => e.key)).toEqual(['a/1', 'a/2']);
      expect((await s.scan('b', { prefix: 'b/', limit: 1 })).map((e) => e.key)).toEqual(['b/1']);
      await s.close();
    });

    it('handles many entries in one batch (bulk catch-up)', async () => {
      const s = await setup.create();
      await s.open();
      const puts = Array.from({ length: 5000 }, (_, i) => entry(`key${String(i).padStart(6, '0')}`, i + 1));
      await s.commit({ bucket: 'big', puts, meta: meta('big') });
      const all = await s.scan('big', {});
      expect(all).toHaveLength(5000);
      expect(all[4999]?.key).toBe('key004999');
      const some = await s.getEntries('big', ['key000000', 'key002500', 'key004999']);
      expect(some.map((e) => e?.seq)).toEqual([1, 2501, 5000]);
      await s.close();
    });

    it('takes a download by column: ranges of runs, beside plain puts and what is stored', async () => {
      const s = await setup.create();
      await s.open();
      if (s.columnar !== true) {
        await s.close();
        return;
      }
      const key = (i: number) => `c${String(i).padStart(5, '0')}${i % 7 === 0 ? 'é日' : ''}`;
      // Stored first: every third key of the lot, so some runs land inside existing pages.
      const before = Array.from({ length: 1200 }, (_, i) => entry(key(i * 3), 1, { old: i }));
      await s.commit({ bucket: 'cols', puts: before });
      const all = Array.from({ length: 6000 }, (_, i): Entry => {
        const e = entry(key(i), 2 + i, { i }, 10 + i);
        return i % 11 === 0 ? { key: e.key, hlc: e.hlc, seq: e.seq, deleted: true } : e;
      });
      // Two runs (pages of two ranges), each with entries left out (they lost to newer ones).
      const first = columnsOf(all.slice(0, 3000));
      const second = columnsOf(all.slice(3000, 5990));
      const columns: ColumnRange[] = [
        { c: first, from: 0, to: 1000 },
        { c: first, from: 1001, to: 3000 },
        { c: second, from: 0, to: 2500 },
        { c: second, from: 2600, to: 2990 },
      ];
      const puts = [entry(key(5995), 9000, { plain: true })];
      await s.commit({ bucket: 'cols', puts, columns, meta: meta('cols') });
      const expected = new Map(before.map((e) => [e.key, e]));
      for (const e of columns.flatMap(rangeEntries)) expected.set(e.key, e);
      for (const e of puts) expected.set(e.key, e);
      // Then keys after everything stored: they start pages of their own, cut from the ranges.
      const later = columnsOf(
        Array.from({ length: 5000 }, (_, i) => entry(`d${String(i).padStart(5, '0')}`, 3, { d: i })),
      );
      const tail: ColumnRange[] = [
        { c: later, from: 0, to: 1700 },
        { c: later, from: 1702, to: 4000 },
        { c: later, from: 4001, to: 5000 },
      ];
      await s.commit({ bucket: 'cols', columns: tail });
      for (const e of tail.flatMap(rangeEntries)) expected.set(e.key, e);
      // And a run that falls between two neighbouring stored keys (a gap inside a page).
      const gap = columnsOf(
        Array.from({ length: 600 }, (_, i) => entry(`d01700-${String(i).padStart(3, '0')}`, 4, { g: i })),
      );
      const between: ColumnRange[] = [
        { c: gap, from: 0, to: 300 },
        { c: gap, from: 301, to: 600 },
      ];
      await s.commit({ bucket: 'cols', columns: between });
      for (const e of between.flatMap(rangeEntries)) expected.set(e.key, e);
      const want = [...expected.values()].sort(keyOrder).map((e) => plainEntry(e));
      const check = async (t: ReplicaStorage) => {
        expect(await t.scan('cols', { includeDeleted: true })).toEqual(want);
        const probe = [
          key(1000),
          key(1001),
          key(5500),
          key(5995),
          key(0),
          key(5999),
          'd01700',
          'd01701',
          'd04999',
        ];
        expect(await t.getEntries('cols', probe)).toEqual(probe.map((k) => want.find((e) => e.key === k)));
      };
      await check(s);
      if (setup.reopen) {
        await s.close();
        const again = await setup.reopen(s);
        await check(again);
        await again.close();
      } else await s.close();
    });

    it('resets a bucket keeping only the named keys, atomically with its meta', async () => {
      const s = await setup.create();
      await s.open();
      await s.commit({
        bucket: 'b',
        puts: [entry('k1', 1), entry('k2', 2), entry('k3', 3)],
        meta: meta('b', { ready: true }),
      });
      await s.resetBucket('b', ['k2'], meta('b', { ready: false, checkpoint: 0, nextOriginSeq: 9 }));
      expect((await s.scan('b', {})).map((e) => e.key)).toEqual(['k2']);
      expect(await s.loadBucket('b')).toMatchObject({ ready: false, nextOriginSeq: 9 });
      await s.close();
    });

    it('leaves nothing behind from a batch that failed', async () => {
      const s = await setup.create();
      await s.open();
      await s.commit({ bucket: 'b', puts: [entry('k1', 1)], meta: meta('b') });
      // A value that cannot be stored makes the whole batch fail.
      const bad = { key: 'k2', hlc: H(2), seq: 2, value: (() => undefined) as unknown as Entry['value'] };
      const attempt = s.commit({ bucket: 'b', puts: [entry('k3', 3), bad], outboxAdd: [op('k3', 1)] });
      const failed = await attempt.then(
        () => false,
        () => true,
      );
      if (failed) {
        expect(await s.getEntries('b', ['k3'])).toEqual([undefined]);
        expect(await s.loadOutbox('b')).toEqual([]);
      }
      expect(await s.getEntries('b', ['k1'])).toEqual([entry('k1', 1)]);
      await s.close();
    });

    if (setup.reopen !== undefined) {
      const reopen = setup.reopen;
      it('keeps everything across a restart', async () => {
        const s = await setup.create();
        await s.open();
        await s.saveIdentity({ replicaId: 'rA', clock: null });
        await s.commit({
          bucket: 'b',
          puts: [entry('k', 5)],
          outboxAdd: [op('k', 1)],
          meta: meta('b', { checkpoint: 5, ready: true }),
          clock: H(5),
        });
        await s.close();
        const t = await reopen(s);
        expect(await t.open()).toEqual({ replicaId: 'rA', clock: H(5) });
        expect(await t.getEntries('b', ['k'])).toEqual([entry('k', 5)]);
        expect((await t.loadOutbox('b')).map((o) => o.key)).toEqual(['k']);
        expect(await t.loadBucket('b')).toMatchObject({ checkpoint: 5, ready: true });
        await t.close();
      });
    }
  });
}
