import { describe, expect, it } from 'vitest';
import type { HostMeta } from '../host-store';
import { plainEntry } from '../packed';
import {
  byKey,
  commit,
  everything,
  H,
  type HostStoreSetup,
  KEYS,
  keysOf,
  live,
  meta,
  shuffled,
  tomb,
  VALUES,
  WALL,
} from './host-store-fixtures';

/** What a store holds and how it reads it back: meta, entries, scans, splits, purges, counters. */
export function contentTests(setup: HostStoreSetup): void {
  describe('meta', () => {
    it('has no meta until one is saved, then loads exactly what was saved last', async () => {
      const s = await setup.create();
      expect(s.loadMeta()).toBeUndefined();
      const first = meta({ head: 12, horizon: 3, purgedHlc: H(2), sum: { count: 9, a: 0xffffffff, b: 1 } });
      s.transaction(() => s.saveMeta(first));
      expect(s.loadMeta()).toEqual(first);
      const second = meta({ epoch: 'epoch-2', head: 2 ** 40, sum: { count: 0, a: 0, b: 0xfffffffe } });
      s.transaction(() => s.saveMeta(second));
      expect(s.loadMeta()).toEqual(second);
    });

    it('keeps the meta it was given, not the object: later changes to either copy are not stored', async () => {
      const s = await setup.create();
      const m = meta({ head: 5, sum: { count: 1, a: 2, b: 3 } });
      s.transaction(() => s.saveMeta(m));
      m.head = 99;
      m.sum.count = 99;
      const loaded = s.loadMeta() as HostMeta;
      loaded.horizon = 42;
      loaded.sum.a = 42;
      expect(s.loadMeta()).toEqual(meta({ head: 5, sum: { count: 1, a: 2, b: 3 } }));
    });
  });

  describe('entries', () => {
    it('reads entries back by key with their version, seq and value; tombstones have no value', async () => {
      const s = await setup.create();
      const entries = VALUES.map((v, i) => live(`v${i}`, i + 1, v));
      const gone = tomb('gone', VALUES.length + 1);
      commit(s, [...shuffled(entries), gone]);
      for (const e of entries) expect(s.getEntry(e.key), e.key).toEqual(e);
      expect(s.getEntry('gone')).toEqual(gone);
      expect(s.getEntry('gone')).not.toHaveProperty('value');
      expect(s.getEntry('missing')).toBeUndefined();
      expect(s.getEntry('v')).toBeUndefined(); // a prefix of stored keys is not a key
      expect(s.count()).toBe(VALUES.length + 1);
    });

    it('replaces an entry on a later put (value, version and seq), from live to tombstone and back', async () => {
      const s = await setup.create();
      commit(s, [live('k', 1, 'one'), live('other', 2)]);
      commit(s, [live('k', 3, { two: 2 })]);
      expect(s.getEntry('k')).toEqual(live('k', 3, { two: 2 }));
      commit(s, [tomb('k', 4)]);
      expect(s.getEntry('k')).toEqual(tomb('k', 4));
      commit(s, [live('k', 5, [5])]);
      expect(s.getEntry('k')).toEqual(live('k', 5, [5]));
      expect(s.count()).toBe(2);
      expect(everything(s)).toEqual([live('k', 5, [5]), live('other', 2)]);
    });

    it('keeps the seq given with each entry: a changed-since scan sees an overwritten key at its new seq', async () => {
      const s = await setup.create();
      commit(
        s,
        ['a', 'b', 'c', 'd', 'e'].map((k, i) => live(k, i + 1)),
      );
      commit(s, [live('b', 6, 'again'), tomb('d', 7)]);
      expect(s.scan(5, undefined, undefined, 100)).toEqual([live('b', 6, 'again'), tomb('d', 7)]);
      expect(keysOf(s.scan(1, undefined, undefined, 100))).toEqual(['b', 'c', 'd', 'e']);
      expect(s.scan(6, undefined, undefined, 100)).toEqual([tomb('d', 7)]);
      expect(s.scan(7, undefined, undefined, 100)).toEqual([]);
      expect(s.loadMeta()?.head).toBe(7);
    });
  });

  describe('scans', () => {
    it('scans in key order whatever the write order, `after` exclusive and `until` inclusive', async () => {
      const s = await setup.create();
      const entries = KEYS.map((k, i) => (i % 5 === 0 ? tomb(k, i + 1) : live(k, i + 1, { i })));
      commit(s, entries);
      const sorted = byKey(entries);
      expect(s.scan(0, undefined, undefined, 1000)).toEqual(sorted);
      const [lo, hi] = [sorted[10]?.key as string, sorted[30]?.key as string];
      expect(s.scan(0, lo, undefined, 1000)).toEqual(sorted.slice(11));
      expect(s.scan(0, undefined, hi, 1000)).toEqual(sorted.slice(0, 31));
      expect(s.scan(0, lo, hi, 1000)).toEqual(sorted.slice(11, 31));
      expect(s.scan(0, 'k0', undefined, 2)).toEqual(sorted.filter((e) => e.key > 'k0').slice(0, 2));
      expect(s.scan(0, lo, lo, 1000)).toEqual([]);
      expect(s.scan(0, sorted[sorted.length - 1]?.key, undefined, 1000)).toEqual([]);
      expect(s.scan(0, undefined, '', 1000)).toEqual([]);
    });

    it('applies the limit to the entries that match, not to the keys it walks past', async () => {
      const s = await setup.create();
      const keys = Array.from({ length: 60 }, (_, i) => `k${String(i).padStart(2, '0')}`);
      commit(
        s,
        keys.map((k, i) => live(k, i + 1)),
      );
      // Every tenth key changes later: a resume from 60 must find exactly those.
      const changed = keys.filter((_, i) => i % 10 === 7);
      commit(
        s,
        changed.map((k, i) => live(k, 61 + i, 'changed')),
      );
      expect(keysOf(s.scan(60, undefined, undefined, 3))).toEqual(changed.slice(0, 3));
      expect(keysOf(s.scan(60, undefined, undefined, 1))).toEqual(changed.slice(0, 1));
      expect(keysOf(s.scan(60, changed[0], undefined, 100))).toEqual(changed.slice(1));
      expect(keysOf(s.scan(60, undefined, 'k40', 100))).toEqual(changed.filter((k) => k <= 'k40'));
      expect(s.scan(0, undefined, undefined, 5)).toHaveLength(5);
    });

    it('pages through a key range with keyset cursors: every matching entry once, tombstones included', async () => {
      const s = await setup.create();
      const entries = shuffled(
        Array.from({ length: 257 }, (_, i) => `p${String(i).padStart(3, '0')}`).map((k, i) =>
          i % 3 === 0 ? tomb(k, i + 1) : live(k, i + 1),
        ),
      );
      commit(s, entries);
      const sorted = byKey(entries);
      for (const [since, until, size] of [
        [0, undefined, 10],
        [0, 'p199', 16],
        [100, undefined, 1],
        [100, 'p150', 9],
        [257, undefined, 10],
      ] as const) {
        const want = sorted.filter((e) => e.seq > since && (until === undefined || e.key <= until));
        expect(everything(s, since, until, size), `since ${since} until ${until}`).toEqual(want);
      }
    });

    it('serves page scans with the same entries as scans', async (t) => {
      const s = await setup.create();
      if (s.pageScan === undefined) t.skip();
      commit(
        s,
        VALUES.map((v, i) => (i % 4 === 1 ? tomb(`k${i}`, i + 1) : live(`k${i}`, i + 1, v))),
      );
      for (const [since, after, until, limit] of [
        [0, undefined, undefined, 100],
        [0, 'k1', 'k5', 3],
        [6, undefined, undefined, 100],
      ] as const) {
        const page = s.pageScan?.(since, after, until, limit) ?? [];
        expect(page.map(plainEntry)).toEqual(s.scan(since, after, until, limit));
      }
    });

    it('orders keys as keyOrder does (UTF-16 code units), also past U+FFFF: scans, pages, splits', async () => {
      const s = await setup.create();
      // U+E000..U+FFFF sort after surrogate pairs by UTF-16 code units, before them in UTF-8.
      const keys = ['a\uFF01', 'a\u{1F600}', 'a\uE000', 'ab', 'a\uD7FF', 'a\u{10FFFF}', 'a\uFFFD'];
      const more = [
        '！',
        '😀',
        '\uFFFF',
        '\uE000',
        'a',
        'z',
        '😀x',
        '！x',
        'k\uFFFFk',
        'k😀k',
        'a\u0000b',
        'é',
      ];
      const entries = shuffled([...keys, ...more]).map((k, i) =>
        i % 4 === 3 ? tomb(k, i + 1) : live(k, i + 1),
      );
      commit(s, entries);
      const sorted = byKey(entries);
      const all = keysOf(sorted);
      expect(all).toEqual([...keys, ...more].sort());
      expect(keysOf(s.scan(0, undefined, undefined, 100))).toEqual(all);
      expect(keysOf(s.scan(0, 'a\u{1F600}', undefined, 100))).toEqual(all.filter((k) => k > 'a\u{1F600}'));
      expect(keysOf(s.scan(0, undefined, 'a\uE000', 100))).toEqual(all.filter((k) => k <= 'a\uE000'));
      expect(keysOf(s.scan(0, '😀', '\uE000', 100))).toEqual(all.filter((k) => k > '😀' && k <= '\uE000'));
      for (const size of [1, 2, 3]) expect(everything(s, 0, undefined, size)).toEqual(sorted);
      expect(everything(s, 0, '！', 2)).toEqual(sorted.filter((e) => e.key <= '！'));
      for (const e of entries) expect(s.getEntry(e.key), e.key).toEqual(e);
      const splits = s.splitKeys(3);
      expect(splits).toHaveLength(2);
      expect([...splits].sort()).toEqual(splits);
      const bounds = [undefined, ...splits, undefined];
      expect(bounds.slice(1).flatMap((until, i) => s.scan(0, bounds[i], until, 100))).toEqual(sorted);
    });
  });

  describe('counts and splits', () => {
    it('counts entries, tombstones included', async () => {
      const s = await setup.create();
      expect(s.count()).toBe(0);
      commit(s, [live('a', 1), live('b', 2), tomb('c', 3)]);
      expect(s.count()).toBe(3);
      commit(s, [tomb('a', 4), live('c', 5)]);
      expect(s.count()).toBe(3);
      commit(s, [live('d', 6)]);
      expect(s.count()).toBe(4);
    });

    it('splits a bucket into ranges of similar size that cover every key once', async () => {
      const s = await setup.create();
      expect(s.splitKeys(4)).toEqual([]);
      const n = 1003;
      const entries = Array.from({ length: n }, (_, i) => `s${String(i).padStart(4, '0')}`).map((k, i) =>
        i % 9 === 0 ? tomb(k, i + 1) : live(k, i + 1),
      );
      commit(s, shuffled(entries));
      for (const parts of [2, 4, 7]) {
        const splits = s.splitKeys(parts);
        expect(splits).toHaveLength(parts - 1);
        for (const k of splits) expect(s.getEntry(k), k).toBeDefined();
        // The ranges (previous split, split] hold every entry once, in parts of similar size.
        const bounds = [undefined, ...splits, undefined];
        const ranges = bounds.slice(1).map((until, i) => s.scan(0, bounds[i], until, n));
        expect(ranges.flat()).toEqual(byKey(entries));
        for (const r of ranges) expect(Math.abs(r.length - n / parts)).toBeLessThanOrEqual(parts);
      }
      expect(s.splitKeys(1)).toEqual([]);
    });

    it('never splits into more ranges than asked, nor at a key it does not hold', async () => {
      const s = await setup.create();
      commit(s, [live('x', 1), live('y', 2)]);
      const splits = s.splitKeys(4);
      expect(splits.length).toBeLessThanOrEqual(3);
      expect([...splits].sort()).toEqual(splits);
      for (const k of splits) expect(['x', 'y']).toContain(k);
    });
  });

  describe('tombstones', () => {
    it('purges tombstones at or below the seq bound and older than the version bound, and only them', async () => {
      const s = await setup.create();
      const keep = [
        live('live-old', 1, 'v', H(1)),
        tomb('too-new-seq', 9, H(1)),
        tomb('too-new-hlc', 2, H(50)),
        tomb('at-hlc-bound', 3, H(40)),
      ];
      const purge = [tomb('gone-a', 4, H(10)), tomb('gone-b', 8, H(30)), tomb('gone-c', 5, H(20, 'w2'))];
      commit(s, shuffled([...keep, ...purge]));
      const result = s.transaction(() => s.purgeTombstones(8, H(40)));
      expect(result).toEqual({ purged: 3, maxHlc: H(30) });
      for (const e of purge) expect(s.getEntry(e.key), e.key).toBeUndefined();
      for (const e of keep) expect(s.getEntry(e.key), e.key).toEqual(e);
      expect(everything(s)).toEqual(byKey(keep));
      expect(s.count()).toBe(keep.length);
      expect(s.transaction(() => s.purgeTombstones(8, H(40)))).toEqual({ purged: 0, maxHlc: '' });
    });

    it('purges by an HLC prefix (a wall time), as the bucket host asks', async () => {
      const s = await setup.create();
      commit(s, [tomb('old', 1, H(5)), tomb('new', 2, H(500))]);
      const prefix = (WALL + 100).toString(16).padStart(12, '0');
      expect(s.transaction(() => s.purgeTombstones(10, prefix))).toEqual({ purged: 1, maxHlc: H(5) });
      expect(keysOf(everything(s))).toEqual(['new']);
    });
  });

  describe('reception counters', () => {
    it('keeps the highest originSeq per origin, 0 for an origin never seen', async () => {
      const s = await setup.create();
      expect(s.getReceived('w1')).toBe(0);
      s.transaction(() => {
        s.setReceived('w1', 5);
        s.setReceived('w2', 2);
        s.setReceived('user:é/😀', 2 ** 40);
      });
      expect(s.getReceived('w1')).toBe(5);
      expect(s.getReceived('w2')).toBe(2);
      expect(s.getReceived('user:é/😀')).toBe(2 ** 40);
      s.transaction(() => s.setReceived('w1', 9));
      expect(s.getReceived('w1')).toBe(9);
      expect(s.getReceived('w2')).toBe(2);
      expect(s.getReceived('w3')).toBe(0);
    });

    it("keeps an origin's latest refusals beside its counter, and rolls them back with it", async () => {
      const s = await setup.create();
      const drift = { originSeq: 3, code: 'CLOCK_DRIFT' as const, message: 'an hour ahead' };
      const purged = { originSeq: 4, code: 'TOMBSTONE_PURGED' as const, message: 'older than a purge é😀' };
      expect(s.getRefused('w1')).toEqual([]);
      s.transaction(() => {
        s.setReceived('w1', 4);
        s.setRefused('w1', [drift, purged]);
      });
      expect(s.getRefused('w1')).toEqual([drift, purged]);
      expect(s.getReceived('w1')).toBe(4);
      expect(s.getRefused('w2')).toEqual([]);
      // An origin refused before anything of it was counted keeps counter 0.
      s.transaction(() => s.setRefused('w2', [drift]));
      expect(s.getReceived('w2')).toBe(0);
      expect(s.getRefused('w2')).toEqual([drift]);
      // A later counter does not touch them; a failed transaction leaves them as they were.
      s.transaction(() => s.setReceived('w1', 7));
      expect(s.getRefused('w1')).toEqual([drift, purged]);
      expect(() =>
        s.transaction(() => {
          s.setRefused('w1', [purged]);
          throw new Error('rolled back');
        }),
      ).toThrow('rolled back');
      expect(s.getRefused('w1')).toEqual([drift, purged]);
      expect(s.getReceived('w1')).toBe(7);
    });
  });
}
