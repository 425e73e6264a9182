import { describe, expect, it } from 'vitest';
import type { HostStore } from '../host-store';
import type { ReplicaRecord } from '../replicas';
import { defaultControl } from '../replication-control';
import { commit, H, type HostStoreSetup, keysOf, live, meta, tomb } from './host-store-fixtures';

const rec = (replicaId: string, patch: Partial<ReplicaRecord> = {}): ReplicaRecord => ({
  replicaId,
  policy: 'replica',
  acked: 0,
  lastSeen: 1_700_000_000_000,
  ...patch,
});

const byId = (rs: ReplicaRecord[]) => [...rs].sort((a, b) => (a.replicaId < b.replicaId ? -1 : 1));

/** Replica records, the purged-key slots, tombstone collection by seq range and admin control. */
export function replicaStoreTests(setup: HostStoreSetup): void {
  const { reopen, sibling } = setup;

  describe('replicas, purged keys and control', () => {
    it('takes tombstones in a seq range, lowest first and at most `limit`, and leaves live entries', async () => {
      const s = await setup.create();
      commit(s, [tomb('a', 1), live('b', 2), tomb('c', 3), tomb('d', 4), tomb('e', 6), live('f', 7)]);
      expect(s.countTombstones()).toBe(4);
      const first = s.transaction(() => s.takeTombstones(0, 6, 2));
      expect(first).toEqual([tomb('a', 1), tomb('c', 3)]);
      expect(s.getEntry('a')).toBeUndefined();
      expect(s.getEntry('d')).toEqual(tomb('d', 4));
      // From after the last one taken, up to a bound that leaves seq 6 alone.
      expect(s.transaction(() => s.takeTombstones(3, 5, 10))).toEqual([tomb('d', 4)]);
      expect(s.transaction(() => s.takeTombstones(5, 5, 10))).toEqual([]);
      expect(keysOf(s.scan(0, undefined, undefined, 100))).toEqual(['b', 'e', 'f']);
      expect(s.countTombstones()).toBe(1);
      expect(s.count()).toBe(3);
    });

    it('rolls back a take with its transaction', async () => {
      const s = await setup.create();
      commit(s, [tomb('a', 1), tomb('b', 2)]);
      expect(() =>
        s.transaction(() => {
          s.takeTombstones(0, 2, 10);
          s.putReplica(rec('r1'));
          s.savePurgedSlot(3, H(1));
          throw new Error('crash');
        }),
      ).toThrow('crash');
      expect(keysOf(s.scan(0, undefined, undefined, 10))).toEqual(['a', 'b']);
      expect(s.listReplicas()).toEqual([]);
      expect(s.loadPurgedSlots()).toEqual([]);
    });

    it('stores replica records, replaces them by id, keeps opaque specs and clears them', async () => {
      const s = await setup.create();
      const spec = { prefixes: ['user-42/'], fields: ['title'], n: 1 };
      s.transaction(() => {
        s.putReplica(rec('r1', { spec, acked: 5 }));
        s.putReplica(rec('r2', { policy: 'copy', dropped: true, lastSeen: 5 }));
        s.putReplica(rec('r1', { spec, acked: 9, policy: 'readOnly' }));
      });
      expect(byId(s.listReplicas())).toEqual([
        rec('r1', { spec, acked: 9, policy: 'readOnly' }),
        rec('r2', { policy: 'copy', dropped: true, lastSeen: 5 }),
      ]);
      s.transaction(() => s.clearReplicas());
      expect(s.listReplicas()).toEqual([]);
    });

    it('keeps purged slots and the control, replacing a slot in place', async () => {
      const s = await setup.create();
      expect(s.loadControl()).toBeUndefined();
      const control = defaultControl();
      control.in = { enabled: false, allow: [], deny: ['group:guests'] };
      s.transaction(() => {
        s.savePurgedSlot(7, H(1));
        s.savePurgedSlot(1023, H(2));
        s.savePurgedSlot(7, H(3));
        s.saveControl(control);
      });
      expect(new Map(s.loadPurgedSlots())).toEqual(
        new Map([
          [7, H(3)],
          [1023, H(2)],
        ]),
      );
      expect(s.loadControl()).toEqual(control);
    });

    it.runIf(sibling !== undefined)('keeps records, slots and control apart per bucket', async () => {
      const a = await setup.create();
      const b = await (sibling as (s: HostStore) => Promise<HostStore>)(a);
      commit(a, [tomb('t', 1)]);
      commit(b, [tomb('t', 1)]);
      a.transaction(() => {
        a.putReplica(rec('r1'));
        a.savePurgedSlot(1, H(1));
        a.saveControl(defaultControl());
        a.takeTombstones(0, 1, 10);
      });
      expect(b.listReplicas()).toEqual([]);
      expect(b.loadPurgedSlots()).toEqual([]);
      expect(b.loadControl()).toBeUndefined();
      expect(b.countTombstones()).toBe(1);
    });

    it.runIf(reopen !== undefined)(
      'keeps records, slots, control and GC progress across a reopen',
      async () => {
        const s = await setup.create();
        const control = defaultControl();
        control.out.allow = ['sub:alice'];
        s.transaction(() => {
          s.saveMeta(meta({ head: 9, gcUpTo: 4 }));
          s.putReplica(rec('r1', { acked: 4, spec: ['p/'] }));
          s.savePurgedSlot(2, H(2));
          s.saveControl(control);
        });
        const r = await (reopen as (s: HostStore) => Promise<HostStore>)(s);
        expect(r.loadMeta()?.gcUpTo).toBe(4);
        expect(r.listReplicas()).toEqual([rec('r1', { acked: 4, spec: ['p/'] })]);
        expect(r.loadPurgedSlots()).toEqual([[2, H(2)]]);
        expect(r.loadControl()).toEqual(control);
      },
    );
  });
}
