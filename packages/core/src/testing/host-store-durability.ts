import { describe, expect, it } from 'vitest';
import { encodeHlc } from '../hlc';
import { BucketHost } from '../host';
import type { HostMeta, HostStore } from '../host-store';
import type { Value } from '../model';
import { plainEntry } from '../packed';
import type { PageMsg } from '../protocol';
import {
  byKey,
  commit,
  everything,
  fixedEnv,
  frame,
  H,
  type HostStoreSetup,
  KEYS,
  keysOf,
  live,
  meta,
  tomb,
  VALUES,
  WALL,
} from './host-store-fixtures';

/** Transactions, other buckets in the same storage, reopening, and a BucketHost on the store. */
export function durabilityTests(setup: HostStoreSetup): void {
  const reopen = setup.reopen;
  const sibling = setup.sibling;

  describe('transactions', () => {
    it('commits what the function wrote and returns what it returned', async () => {
      const s = await setup.create();
      const out = s.transaction(() => {
        s.putEntry(live('a', 1));
        s.setReceived('w1', 1);
        s.saveMeta(meta({ head: 1 }));
        return { answer: 42 };
      });
      expect(out).toEqual({ answer: 42 });
      expect(s.getEntry('a')).toEqual(live('a', 1));
      expect(s.getReceived('w1')).toBe(1);
      expect(s.loadMeta()?.head).toBe(1);
    });

    it('rolls back every kind of write when the function throws, and rethrows its error', async () => {
      const s = await setup.create();
      commit(s, [live('k0', 1, 'before'), tomb('dead', 2, H(1))]);
      s.transaction(() => s.setReceived('w1', 2));
      const state = () => ({
        meta: s.loadMeta(),
        entries: everything(s),
        count: s.count(),
        k0: s.getEntry('k0'),
        received: [s.getReceived('w1'), s.getReceived('w2')],
      });
      const before = state();
      const boom = new Error('boom');
      let thrown: unknown;
      try {
        s.transaction(() => {
          s.putEntry(live('new', 3));
          s.putEntry(live('k0', 4, 'after'));
          s.setReceived('w1', 7);
          s.setReceived('w2', 1);
          s.purgeTombstones(10, H(100));
          s.saveMeta(meta({ head: 4, horizon: 2, purgedHlc: H(1) }));
          // Reads inside the transaction see its writes.
          expect(keysOf(s.scan(0, undefined, undefined, 10))).toEqual(['k0', 'new']);
          expect(s.getEntry('dead')).toBeUndefined();
          throw boom;
        });
      } catch (e) {
        thrown = e;
      }
      expect(thrown).toBe(boom);
      expect(state()).toEqual(before);
      expect(s.getEntry('new')).toBeUndefined();
      expect(s.getEntry('dead')).toEqual(tomb('dead', 2, H(1)));
      // A purge rolled back on its own, after a read inside the transaction, also leaves
      // everything in place.
      expect(() =>
        s.transaction(() => {
          s.purgeTombstones(10, H(100));
          expect(keysOf(s.scan(0, undefined, undefined, 10))).toEqual(['k0']);
          throw new Error('again');
        }),
      ).toThrow('again');
      expect(state()).toEqual(before);
      // The store is still usable.
      commit(s, [live('later', 5)]);
      expect(keysOf(everything(s))).toEqual(['dead', 'k0', 'later']);
    });

    it('rolls a failed nested transaction back to where it began; the outer one still commits', async () => {
      const s = await setup.create();
      commit(s, [live('base', 1)]);
      s.transaction(() => {
        s.putEntry(live('outer-1', 2));
        s.setReceived('w1', 1);
        expect(() =>
          s.transaction(() => {
            s.putEntry(live('inner', 3));
            s.putEntry(live('base', 4, 'inner'));
            s.setReceived('w1', 9);
            s.saveMeta(meta({ head: 4 }));
            throw new Error('inner');
          }),
        ).toThrow('inner');
        expect(s.getEntry('inner')).toBeUndefined();
        s.putEntry(live('outer-2', 5));
        s.saveMeta(meta({ head: 5 }));
      });
      expect(keysOf(everything(s))).toEqual(['base', 'outer-1', 'outer-2']);
      expect(s.getEntry('base')).toEqual(live('base', 1));
      expect(s.getReceived('w1')).toBe(1);
      expect(s.loadMeta()?.head).toBe(5);
    });

    it('rolls back a nested transaction that succeeded when the outer one fails', async () => {
      const s = await setup.create();
      expect(() =>
        s.transaction(() => {
          s.transaction(() => {
            s.putEntry(live('inner', 1));
            s.setReceived('w1', 1);
          });
          throw new Error('outer');
        }),
      ).toThrow('outer');
      expect(s.getEntry('inner')).toBeUndefined();
      expect(s.getReceived('w1')).toBe(0);
      expect(s.count()).toBe(0);
    });
  });

  describe.runIf(sibling !== undefined)('several buckets in one storage', () => {
    it('keeps buckets apart: entries, meta, counters, counts, splits and purges', async () => {
      const a = await setup.create();
      const b = await (sibling as NonNullable<typeof sibling>)(a);
      commit(a, [live('k', 1, 'a'), tomb('t', 2, H(1)), live('only-a', 3)]);
      a.transaction(() => a.setReceived('w1', 3));
      expect(b.loadMeta()).toBeUndefined();
      expect(b.getEntry('k')).toBeUndefined();
      expect(b.scan(0, undefined, undefined, 10)).toEqual([]);
      expect(b.count()).toBe(0);
      expect(b.getReceived('w1')).toBe(0);
      commit(b, [live('k', 1, 'b'), tomb('t', 2, H(1))], { epoch: 'epoch-b' });
      expect(b.transaction(() => b.purgeTombstones(10, H(100)))).toEqual({ purged: 1, maxHlc: H(1) });
      expect(a.getEntry('t')).toEqual(tomb('t', 2, H(1)));
      expect(a.getEntry('k')?.value).toBe('a');
      expect(b.getEntry('k')?.value).toBe('b');
      expect(a.loadMeta()?.epoch).toBe('epoch-1');
      expect(b.loadMeta()?.epoch).toBe('epoch-b');
      expect(keysOf(everything(a))).toEqual(['k', 'only-a', 't']);
      expect(keysOf(everything(b))).toEqual(['k']);
      expect([a.count(), b.count()]).toEqual([3, 1]);
    });
  });

  describe.runIf(reopen !== undefined)('reopening', () => {
    const again = (s: HostStore) => (reopen as NonNullable<typeof reopen>)(s);

    it('keeps meta, entries, tombstones and counters across a reopen', async () => {
      const s = await setup.create();
      const entries = KEYS.map((k, i) =>
        i % 4 === 0 ? tomb(k, i + 1) : live(k, i + 1, VALUES[i % VALUES.length] as Value),
      );
      commit(s, entries, { horizon: 3, purgedHlc: H(3), sum: { count: 7, a: 0xffffffff, b: 12 } });
      s.transaction(() => {
        s.setReceived('w1', 40);
        s.setReceived('w2', 2);
      });
      const before = { meta: s.loadMeta(), all: everything(s), count: s.count(), splits: s.splitKeys(3) };
      const r = await again(s);
      expect({ meta: r.loadMeta(), all: everything(r), count: r.count(), splits: r.splitKeys(3) }).toEqual(
        before,
      );
      expect(r.getReceived('w1')).toBe(40);
      expect(r.getReceived('w2')).toBe(2);
      expect(keysOf(r.scan(30, undefined, undefined, 100))).toEqual(
        keysOf(byKey(entries.filter((e) => e.seq > 30))),
      );
    });

    it('keeps nothing of a rolled-back transaction across a reopen', async () => {
      const s = await setup.create();
      commit(s, [live('kept', 1)]);
      expect(() =>
        s.transaction(() => {
          s.putEntry(live('lost', 2));
          s.setReceived('w1', 2);
          s.saveMeta(meta({ head: 2 }));
          throw new Error('crash');
        }),
      ).toThrow('crash');
      const r = await again(s);
      expect(keysOf(everything(r))).toEqual(['kept']);
      expect(r.getReceived('w1')).toBe(0);
      expect(r.loadMeta()?.head).toBe(1);
    });
  });

  describe('under a BucketHost', () => {
    const open = (store: HostStore, retain = 1_000_000) =>
      new BucketHost({
        bucket: 'b',
        store,
        env: fixedEnv(),
        tombstoneRetainOps: retain,
        tombstoneRetainMs: 1000,
      });

    it('stores the seqs the host assigns, with the head and the reception counters', async () => {
      const s = await setup.create();
      const host = open(s);
      const epoch = host.state.epoch;
      expect(s.loadMeta()).toEqual(meta({ epoch }));
      expect(host.push('w1', frame('w1', 1, ['a', 'b', 'c']))).toMatchObject({ upTo: 3, seq: 3 });
      expect(host.push('w2', frame('w2', 1, ['b', 'd'], { wall: 10 }))).toMatchObject({ upTo: 2, seq: 5 });
      // A re-push is deduplicated: no new seq.
      expect(host.push('w1', frame('w1', 1, ['a', 'b', 'c']))).toMatchObject({ upTo: 3, seq: 5 });
      expect(everything(s).map((e) => [e.key, e.seq])).toEqual([
        ['a', 1],
        ['b', 4],
        ['c', 3],
        ['d', 5],
      ]);
      expect(s.loadMeta()).toMatchObject({ epoch, head: 5 });
      expect(s.loadMeta()?.sum).toEqual(host.state.sum);
      expect([s.getReceived('w1'), s.getReceived('w2')]).toEqual([3, 2]);
      const page = host.page({ type: 'pageReq', bucket: 'b', reqId: 1, since: 3, limit: 10 }) as PageMsg;
      expect(page.entries.map(plainEntry)).toEqual(s.scan(3, undefined, undefined, 10));
    });

    it('lets a new host on the same data continue where the last one stopped', async () => {
      let s = await setup.create();
      const first = open(s);
      first.push('w1', frame('w1', 1, ['a', 'b']));
      const state = { ...first.state };
      if (reopen !== undefined) s = await reopen(s);
      const second = open(s);
      expect(second.state).toEqual(state);
      expect(second.push('w1', frame('w1', 3, ['b', 'c']))).toMatchObject({ upTo: 4, seq: 4 });
      expect(everything(s).map((e) => [e.key, e.seq])).toEqual([
        ['a', 1],
        ['b', 3],
        ['c', 4],
      ]);
    });

    it('purges tombstones behind the horizon it keeps in the meta', async () => {
      const s = await setup.create();
      const host = open(s, 5);
      host.push('w1', frame('w1', 1, ['x', 'y']));
      host.push('w1', frame('w1', 3, ['x', 'y'], { del: true }));
      host.push(
        'w1',
        frame(
          'w1',
          5,
          Array.from({ length: 12 }, (_, i) => `k${i}`),
        ),
      );
      const m = s.loadMeta() as HostMeta;
      expect(m.horizon).toBeGreaterThanOrEqual(4);
      expect(m.purgedHlc).toBe(encodeHlc(WALL + 4, 0, 'w1'));
      expect(s.getEntry('x')).toBeUndefined();
      expect(s.getEntry('y')).toBeUndefined();
      expect(everything(s).some((e) => e.deleted)).toBe(false);
      expect(s.count()).toBe(12);
    });
  });
}
