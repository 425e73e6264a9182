import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checksumOf } from './checksum';
import type { Env } from './env';
import { encodeHlc } from './hlc';
import { allHostEntries, BucketHost, type HostConnection } from './host';
import { MemoryHostStore } from './host-store';
import type { ServerMessage, SubscribedMsg } from './protocol';
import { type ReplicationSpec, specCovers } from './spec';

const env: Env = {
  now: () => 1_700_000_000_000,
  setTimeout: () => undefined,
  clearTimeout: () => undefined,
  random: () => 0.5,
};

function conn(id: string): HostConnection & { inbox: ServerMessage[] } {
  const inbox: ServerMessage[] = [];
  return { id, replicaId: id, canWrite: true, send: (m) => inbox.push(m), inbox };
}

const SPECS: ReplicationSpec[] = [
  { prefixes: ['a'] },
  { ranges: [{ gte: 'b', lt: 'd' }] },
  { prefixes: ['c', 'a1'] },
];
const key = fc.constantFrom('a0', 'a1', 'a2', 'b0', 'b5', 'c', 'c1', 'd', 'e');

describe("a host's checksums of specs", () => {
  it('equal the spec’s live entries at every subscription, kept up to date while nobody subscribes', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            spec: fc.integer({ min: 0, max: 2 }),
            writes: fc.array(fc.tuple(key, fc.boolean()), { maxLength: 6 }),
          }),
          { minLength: 1, maxLength: 12 },
        ),
        (steps) => {
          const store = new MemoryHostStore();
          const host = new BucketHost({ bucket: 'b', store, env });
          const writer = conn('w');
          let originSeq = 0;
          let wall = 1;
          steps.forEach((step, i) => {
            const spec = SPECS[step.spec] as ReplicationSpec;
            const c = conn(`s${i}`);
            host.subscribe(c, { type: 'sub', bucket: 'b', since: 0, flush: false, subId: i, spec });
            const subd = c.inbox.find((m): m is SubscribedMsg => m.type === 'subscribed');
            const want = checksumOf(allHostEntries(store).filter((e) => specCovers(spec, e.key)));
            expect(subd?.sum).toEqual(want);
            const ops = step.writes.map(([k, del]) => {
              originSeq++;
              const hlc = encodeHlc(1_699_999_000_000 + wall++, 0, 'w');
              return del
                ? { origin: 'w', originSeq, key: k, kind: 'del' as const, hlc }
                : { origin: 'w', originSeq, key: k, kind: 'set' as const, value: wall, hlc };
            });
            if (ops.length > 0) host.push('w', { type: 'push', bucket: 'b', ops }, writer);
            // Every delivery's checksum is the spec's, after its ops.
            const last = c.inbox.filter((m) => m.type === 'deliver').pop();
            if (last?.type === 'deliver') {
              expect(last.sum).toEqual(
                checksumOf(allHostEntries(store).filter((e) => specCovers(spec, e.key))),
              );
              expect(last.ops.every((o) => specCovers(spec, o.key))).toBe(true);
            }
            // Half the subscribers leave: their spec's checksum stays cached and must keep up.
            if (i % 2 === 0) host.unsubscribe(c);
          });
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('a stale sub', () => {
  it('is ignored once a newer one arrived on the connection: the newer spec and policy stay', () => {
    const host = new BucketHost({ bucket: 'b', store: new MemoryHostStore(), env });
    const c = conn('r1');
    const spec: ReplicationSpec = { prefixes: ['k1'] };
    host.subscribe(c, {
      type: 'sub',
      bucket: 'b',
      since: 0,
      flush: false,
      subId: 10,
      spec,
      policy: 'readOnly',
    });
    // The whole-bucket `sub` the replica sent just before, arriving late.
    host.subscribe(c, { type: 'sub', bucket: 'b', since: 0, flush: false, subId: 9 });
    expect(c.inbox.map((m) => (m as SubscribedMsg).subId)).toEqual([10]);
    expect(host.specOf(c)).toEqual(spec);
    // A duplicate of the newest is answered again; after an unsub, any subId starts afresh.
    host.subscribe(c, { type: 'sub', bucket: 'b', since: 0, flush: false, subId: 10, spec });
    host.unsubscribe(c);
    host.subscribe(c, { type: 'sub', bucket: 'b', since: 0, flush: false, subId: 2 });
    expect(c.inbox.map((m) => (m as SubscribedMsg).subId)).toEqual([10, 10, 2]);
    expect(host.specOf(c)).toBeUndefined();
  });
});
