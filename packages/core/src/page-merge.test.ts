import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type BucketState, type CatchUp, newCatchUp } from './bucket-state';
import { checksumEquals, checksumOf, emptyChecksum } from './checksum';
import { columnsOf } from './columns';
import { ABSENT } from './fresh-join';
import { hlcWall } from './hlc';
import { MemoryReplicaStorage } from './memory-storage';
import { Mitt } from './mitt';
import { type Entry, keyOrder, type SeqOp } from './model';
import { type DownloadedPage, mergePages } from './page-merge';
import { entry, type FakeSync, fakeSync, freshBucket, seqOp, storedValues } from './testing/sync-fakes';

interface Rig {
  f: FakeSync;
  b: BucketState;
  cu: CatchUp;
}

/**
 * A bucket catching up: a fresh join (storage holds only `stored`, whose versions it keeps)
 * or a resume (storage holds `stored`), with `held` in its mitt.
 */
async function rig(opts: {
  fresh: boolean;
  stored?: Entry[];
  held?: SeqOp[];
  columnar?: boolean;
}): Promise<Rig> {
  const storage = new MemoryReplicaStorage();
  if (opts.columnar === false) Object.defineProperty(storage, 'columnar', { value: false });
  const f = fakeSync(storage);
  const b = freshBucket();
  const stored = opts.stored ?? [];
  b.meta = { ...b.meta, sum: checksumOf(stored) };
  await f.storage.commit({ bucket: 'b', puts: stored, meta: b.meta });
  const cu = newCatchUp(
    {
      type: 'subscribed',
      bucket: 'b',
      subId: 1,
      epoch: 'e1',
      from: 100,
      received: 0,
      sum: emptyChecksum(),
      splits: [],
    },
    opts.fresh ? 0 : 5,
  );
  if (opts.fresh)
    for (const e of stored) cu.kept.set(e.key, e.deleted ? { hlc: e.hlc, deleted: true } : { hlc: e.hlc });
  b.catchUp = cu;
  b.mitt = new Mitt(100);
  for (const op of opts.held ?? []) b.mitt.add(op, true);
  return { f, b, cu };
}

const merge = ({ f, b, cu }: Rig, pages: DownloadedPage[]) => mergePages(f, b, cu, pages, 1_000);

describe('mergePages', () => {
  for (const cols of [false, true]) {
    const as = (es: Entry[]): DownloadedPage => (cols ? columnsOf(es) : es);
    describe(cols ? 'pages by column' : 'pages of entries', () => {
      it("drops a downloaded entry older than the mitt's, and remembers storage has nothing of it", async () => {
        const r = await rig({ fresh: true, held: [seqOp(100, 'k', 5, 'live')] });
        await merge(r, [as([entry('a', 1, 'x'), entry('k', 3, 'old')])]);
        expect(storedValues(r.f.storage)).toEqual({ a: 'x' });
        expect(r.cu.kept.get('k')).toBe(ABSENT);
      });

      it('a tombstone held in the mitt wins over an older downloaded value', async () => {
        const r = await rig({ fresh: true, held: [seqOp(100, 'k', 5)] });
        await merge(r, [as([entry('k', 3, 'old')])]);
        expect(r.f.storage.peek('b').has('k')).toBe(false);
      });

      it("stores a downloaded entry newer than the mitt's", async () => {
        const r = await rig({ fresh: true, held: [seqOp(100, 'k', 2, 'live')] });
        await merge(r, [as([entry('k', 3, 'newer')])]);
        expect(storedValues(r.f.storage)).toEqual({ k: 'newer' });
      });

      it('a fresh join never overwrites a kept local write with an older download', async () => {
        const r = await rig({ fresh: true, stored: [entry('k', 9, 'mine')] });
        await merge(r, [as([entry('j', 1, 'x'), entry('k', 4, 'theirs')])]);
        expect(storedValues(r.f.storage)).toEqual({ j: 'x', k: 'mine' });
        expect(r.f.changes.flatMap((c) => c.entries.map((e) => e.key))).toEqual(['j']);
      });

      it('a resume compares with storage: older downloads lose, newer ones replace', async () => {
        const r = await rig({ fresh: false, stored: [entry('a', 9, 'stored'), entry('b', 1, 'stored')] });
        await merge(r, [as([entry('a', 4, 'dl'), entry('b', 4, 'dl'), entry('c', 4)])]);
        expect(storedValues(r.f.storage)).toEqual({ a: 'stored', b: 'dl', c: '<deleted>' });
        expect(checksumEquals(r.b.meta.sum, checksumOf(r.f.storage.peek('b').values()))).toBe(true);
      });
    });
  }

  it('records the greatest downloaded seq and observes the newest HLC', async () => {
    const r = await rig({ fresh: true });
    await merge(r, [[entry('a', 7, 1, 40), entry('b', 2, 1, 12)]]);
    expect(r.cu.dlMaxSeq).toBe(40);
    expect(hlcWall(r.f.clock.last())).toBe(7);
  });

  it('stores what last-writer-wins decides and keeps the checksum exact, any page shape (property)', async () => {
    const keys = Array.from({ length: 10 }, (_, i) => `k${i}`);
    const versionArb = fc.record({ wall: fc.integer({ min: 1, max: 6 }), live: fc.boolean() });
    const tableArb = fc.dictionary(fc.constantFrom(...keys), versionArb, { maxKeys: 10 });
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          fresh: fc.boolean(),
          columnar: fc.boolean(),
          stored: tableArb,
          held: tableArb,
          downloaded: tableArb,
          cuts: fc.array(fc.integer({ min: 0, max: 10 }), { maxLength: 3 }),
          byColumn: fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
        }),
        async ({ fresh, columnar, stored, held, downloaded, cuts, byColumn }) => {
          const toEntry = (k: string, v: { wall: number; live: boolean }, tag: string) =>
            entry(k, v.wall, v.live ? tag : undefined, v.wall);
          const storedEs = Object.entries(stored).map(([k, v]) => toEntry(k, v, 'stored'));
          const heldOps = Object.entries(held).map(([k, v], i) =>
            seqOp(100 + i, k, v.wall, v.live ? 'held' : undefined),
          );
          const dl = Object.entries(downloaded)
            .map(([k, v]) => toEntry(k, v, 'dl'))
            .sort(keyOrder);
          const r = await rig({ fresh, columnar, stored: storedEs, held: heldOps });
          // Split the download into pages at sorted cut points, each by column or not.
          const at = [...new Set([0, ...cuts.filter((c) => c < dl.length), dl.length])].sort((x, y) => x - y);
          const pages: DownloadedPage[] = [];
          for (let i = 0; i + 1 < at.length; i++) {
            const es = dl.slice(at[i], at[i + 1]);
            pages.push(byColumn[i] === true && es.length > 0 ? columnsOf(es) : es);
          }
          await merge(r, pages);

          const expected = new Map(storedEs.map((e) => [e.key, e]));
          const won: string[] = [];
          for (const d of dl) {
            const h = heldOps.find((o) => o.key === d.key);
            const cur = expected.get(d.key);
            if ((h === undefined || h.hlc < d.hlc) && (cur === undefined || d.hlc > cur.hlc)) {
              expected.set(d.key, d);
              won.push(d.key);
            }
          }
          const want: Record<string, unknown> = {};
          for (const k of [...expected.keys()].sort()) {
            const e = expected.get(k) as Entry;
            want[k] = e.deleted ? '<deleted>' : e.value;
          }
          expect(storedValues(r.f.storage)).toEqual(want);
          expect(checksumEquals(r.b.meta.sum, checksumOf(r.f.storage.peek('b').values()))).toBe(true);
          expect(r.f.changes.flatMap((c) => c.entries.map((e) => e.key)).sort()).toEqual(won.sort());
        },
      ),
      { numRuns: 200 },
    );
  });
});
