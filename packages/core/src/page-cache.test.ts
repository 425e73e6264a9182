import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Env } from './env';
import { encodeHlc } from './hlc';
import { BucketHost, type HostConnection } from './host';
import { MemoryHostStore } from './host-store';
import type { Entry, Op } from './model';
import { MAX_OVERLAY, PageCacheBudget } from './page-cache';
import { pageEntries, pageRange } from './testing/host-store-fixtures';

const NOW = 1_700_000_000_000;
const env: Env = { now: () => NOW, setTimeout: () => 0, clearTimeout: () => undefined, random: () => 0.5 };
const conn: HostConnection = { id: 'c', replicaId: 'rW', canWrite: true, send: () => undefined };

/** A host whose store counts the reads that reach it. */
function setup(
  cache: { maxBytes?: number; minEntries?: number; budget?: PageCacheBudget } = { minEntries: 0 },
) {
  const store = new MemoryHostStore();
  const reads = { n: 0, limits: [] as number[], since: [] as number[] };
  const scan = store.scan.bind(store);
  store.scan = (since, after, until, limit) => {
    reads.n++;
    reads.limits.push(limit);
    reads.since.push(since);
    return scan(since, after, until, limit);
  };
  const host = new BucketHost({ bucket: 'b', store, env, pageCache: cache });
  let originSeq = 0;
  let wall = NOW;
  const write = (key: string, value: unknown = originSeq, deleted = false) => {
    originSeq++;
    wall++;
    const op: Op = deleted
      ? { origin: 'rW', originSeq, key, kind: 'del', hlc: encodeHlc(wall, 0, 'rW') }
      : {
          origin: 'rW',
          originSeq,
          key,
          kind: 'set',
          value: value as Op['value'],
          hlc: encodeHlc(wall, 0, 'rW'),
        };
    host.push('rW', { type: 'push', bucket: 'b', ops: [op] }, conn);
  };
  return { host, store, reads, write };
}

const key = (i: number) => `k${String(i).padStart(4, '0')}`;

/** A whole join's download: every range of `splits` paged through with `limit`. */
function download(host: BucketHost, limit: number, splits: string[] = []): Entry[] {
  const bounds = [undefined, ...splits];
  const pages = bounds.flatMap((after, r) => pageRange(host, { limit, after, until: splits[r], cols: true }));
  for (const p of pages) expect(pageEntries(p).length).toBeLessThanOrEqual(limit);
  return pages.flatMap(pageEntries);
}

/** What the store holds now, in key order. */
const held = (store: MemoryHostStore): Entry[] => store.scan(0, undefined, undefined, 1e9);

const plain = (es: Entry[]) =>
  es.map((e) => [e.key, e.hlc, e.seq, e.deleted === true, e.deleted ? null : e.value]);

describe('the page cache', () => {
  it('serves the next join from memory, with the changes since on top', () => {
    const { host, store, reads, write } = setup();
    for (let i = 0; i < 300; i += 2) write(key(i), `v${i}`);
    expect(plain(download(host, 40))).toEqual(plain(held(store)));
    // Changes after the first join: an update, a delete, keys new in the middle and at the end.
    write(key(10), 'changed');
    write(key(20), undefined, true);
    write(key(31), 'new');
    write(key(999), 'last');
    const want = plain(held(store));
    reads.limits = [];
    // Another page size and split: the cursors fall inside the segments read first.
    const second = download(host, 25, [key(101), key(203)]);
    expect(plain(second)).toEqual(want);
    // Only reads of the entries changed since reach the store, one per page served.
    expect(reads.limits.length).toBeGreaterThan(6);
    expect(reads.limits.filter((l) => l !== MAX_OVERLAY + 1)).toEqual([]);
  });

  it('keeps a served page with its changes on top as the segment: the next join reads back less', () => {
    const { host, store, reads, write } = setup();
    for (let i = 0; i < 300; i++) write(key(i), i);
    download(host, 40);
    const first = host.state.head;
    write(key(5), 'a');
    write(key(250), undefined, true);
    write(key(1000), 'new at the end');
    expect(plain(download(host, 40))).toEqual(plain(held(store)));
    const second = host.state.head;
    write(key(6), 'b');
    reads.since = [];
    reads.limits = [];
    expect(plain(download(host, 40))).toEqual(plain(held(store)));
    // Only the changes after the second join are read back, not those since the first.
    const overlays = reads.since.filter((_, i) => reads.limits[i] === MAX_OVERLAY + 1);
    expect(overlays.length).toBeGreaterThan(3);
    expect(overlays.filter((s) => s < second)).toEqual([]);
    expect(first).toBeLessThan(second);
    // Nothing changed since: nothing to read back.
    reads.limits = [];
    expect(plain(download(host, 40))).toEqual(plain(held(store)));
    expect(reads.limits.filter((l) => l === MAX_OVERLAY + 1)).toEqual([]);
  });

  it('stays within its budget when segments taken from served pages grow', () => {
    const fill = (budget: PageCacheBudget) => {
      const rig = setup({ budget, minEntries: 0 });
      for (let i = 0; i < 200; i += 2) rig.write(key(i), 'x'.repeat(20));
      download(rig.host, 50);
      return rig;
    };
    const probe = new PageCacheBudget(1e9);
    fill(probe);
    // A budget the first join fills exactly; then keys are added inside its segments.
    const budget = new PageCacheBudget(probe.size);
    const { host, store, write } = fill(budget);
    expect(budget.size).toBe(probe.size);
    for (let i = 1; i < 200; i += 8) write(key(i), 'y'.repeat(20));
    // Pages larger than the segments: each is served whole and takes its segment's place.
    expect(plain(download(host, 100))).toEqual(plain(held(store)));
    expect(budget.size).toBeLessThanOrEqual(budget.maxBytes);
  });

  it('reads a segment again once more than MAX_OVERLAY of its entries changed', () => {
    const { host, store, write } = setup();
    for (let i = 0; i < 2 * MAX_OVERLAY; i++) write(key(i), i);
    download(host, 4000);
    for (let i = 0; i < MAX_OVERLAY + 10; i++) write(key(i), `again ${i}`);
    expect(plain(download(host, 4000))).toEqual(plain(held(store)));
    // Read again, the segment starts from the new state: a later join sees it too.
    write(key(1), 'third');
    expect(plain(download(host, 100))).toEqual(plain(held(store)));
  });

  it('forgets everything when collected tombstones move the horizon', () => {
    const { host, store, write } = setup();
    for (let i = 0; i < 50; i++) write(key(i), i);
    write(key(7), undefined, true);
    expect(plain(download(host, 10))).toEqual(plain(held(store)));
    // A collection deletes the tombstone without a new seq: the cache must not serve it.
    store.takeTombstones(0, host.state.head, 100);
    (host as unknown as { meta: { horizon: number } }).meta.horizon = host.state.head;
    const after = download(host, 10);
    expect(after.some((e) => e.key === key(7))).toBe(false);
    expect(plain(after)).toEqual(plain(held(store)));
  });

  it('keeps within its byte budget and still answers every page right', () => {
    const { host, store, write } = setup({ maxBytes: 2_000, minEntries: 0 });
    for (let i = 0; i < 400; i++) write(key(i), 'x'.repeat(20));
    for (let round = 0; round < 3; round++) {
      write(key(round * 7), round);
      expect(plain(download(host, 30 + round * 11, [key(150)]))).toEqual(plain(held(store)));
    }
  });

  it('keeps the first part of a view larger than its budget for every next join', () => {
    const { host, store, reads, write } = setup({ maxBytes: 8_000, minEntries: 0 });
    for (let i = 0; i < 300; i++) write(key(i), 'x'.repeat(20));
    const first = reads.n;
    expect(plain(download(host, 30))).toEqual(plain(held(store)));
    const readFirst = reads.n - first;
    // Least recently used first would drop each segment just before this join reads it.
    for (let round = 0; round < 3; round++) {
      const before = reads.n;
      expect(plain(download(host, 30))).toEqual(plain(held(store)));
      expect(reads.n - before).toBeLessThan(readFirst - 2);
    }
    // Another view still takes room: its second join is served from memory.
    const spec = { prefixes: ['k02'] };
    const join = () => pageRange(host, { limit: 30, cols: true, spec }).flatMap((p) => plain(pageEntries(p)));
    const want = plain(held(store).filter((e) => e.key.startsWith('k02')));
    expect(join()).toEqual(want);
    const before = reads.n;
    expect(join()).toEqual(want);
    expect(reads.n).toBe(before);
  });

  it('keeps the pages of a replication spec apart, projected, with the changes since on top', () => {
    const { host, store, reads, write } = setup();
    for (let i = 0; i < 300; i++) write(key(i), { n: i, secret: `s${i}` });
    const spec = { prefixes: ['k01', 'k02'], fields: ['n'] };
    const want = () =>
      plain(
        held(store)
          .filter((e) => e.key.startsWith('k01') || e.key.startsWith('k02'))
          .map((e) => (e.deleted ? e : { ...e, value: { n: (e.value as { n: number }).n } })),
      );
    const join = (limit: number) =>
      pageRange(host, { limit, cols: true, spec }).flatMap((p) => plain(pageEntries(p)));
    expect(join(30)).toEqual(want());
    expect(plain(download(host, 40))).toEqual(plain(held(store))); // the whole bucket: its own view
    write(key(105), { n: -1, secret: 'x' });
    write(key(150), undefined, true);
    write(key(299), { n: -2, secret: 'y' }); // outside the spec
    const expected = want();
    reads.limits = [];
    expect(join(17)).toEqual(expected);
    // Only reads of what changed (MAX_OVERLAY + 1, and one more span by span): no page of 17.
    expect(reads.limits.length).toBeGreaterThan(0);
    expect(reads.limits.filter((l) => l <= MAX_OVERLAY)).toEqual([]);
  });

  it('is left out for buckets under minEntries', () => {
    const { host, reads, write } = setup({ minEntries: 1_000 });
    for (let i = 0; i < 100; i++) write(key(i), i);
    download(host, 50);
    const before = reads.n;
    download(host, 50);
    expect(reads.n - before).toBeGreaterThanOrEqual(2); // read again: nothing was kept
  });

  it('any mix of writes and joins downloads exactly what the store holds (property)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ k: fc.integer({ min: 0, max: 120 }), del: fc.boolean() }),
            fc.record({ join: fc.integer({ min: 1, max: 60 }), split: fc.integer({ min: 0, max: 120 }) }),
          ),
          { maxLength: 120 },
        ),
        fc.integer({ min: 300, max: 20_000 }),
        (steps, maxBytes) => {
          const budget = new PageCacheBudget(maxBytes);
          const { host, store, write } = setup({ budget, minEntries: 0 });
          for (const s of steps) {
            if ('k' in s) write(key(s.k), s.k, s.del);
            else expect(plain(download(host, s.join, [key(s.split)]))).toEqual(plain(held(store)));
            expect(budget.size).toBeLessThanOrEqual(maxBytes);
          }
          expect(plain(download(host, 7))).toEqual(plain(held(store)));
        },
      ),
      { numRuns: 150 },
    );
  });
});
