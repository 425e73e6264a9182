import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type BucketState, type CatchUp, type MergedSpan, newCatchUp } from './bucket-state';
import { emptyChecksum } from './checksum';
import { ABSENT, addMerged, boundKept, keep, knownVersions, OLDER, spanOf } from './fresh-join';
import { Mitt } from './mitt';
import { entry, freshBucket, hlc, seqOp } from './testing/sync-fakes';

const joinOf = (b: BucketState, from = 1): CatchUp => {
  const cu = newCatchUp(
    {
      type: 'subscribed',
      bucket: b.name,
      subId: 1,
      epoch: 'e1',
      from,
      received: 0,
      sum: emptyChecksum(),
      splits: [],
    },
    0,
  );
  b.catchUp = cu;
  b.mitt = new Mitt(from);
  return cu;
};

/** A bucket joining, whose mitt has taken ops up to seq `upTo` and which merged `spans`. */
function joining(spans: MergedSpan[], upTo: number): { b: BucketState; cu: CatchUp } {
  const b = freshBucket();
  const cu = joinOf(b);
  for (const s of spans) addMerged(cu, s);
  for (let seq = 1; seq <= upTo; seq++) b.mitt?.add(seqOp(seq, `other${seq}`, seq, 1), false);
  return { b, cu };
}

describe('fresh join', () => {
  it('finds the merged span holding a key, whatever order pages were merged in (property)', () => {
    const keyArb = fc.stringMatching(/^[a-e]{1,3}$/);
    fc.assert(
      fc.property(
        fc.uniqueArray(keyArb, { minLength: 0, maxLength: 12 }),
        fc.boolean(),
        fc.boolean(),
        fc.array(keyArb, { maxLength: 20 }),
        fc.integer(),
        (bounds, openStart, openEnd, queries, seed) => {
          const cuts: (string | undefined)[] = [...bounds].sort();
          if (openStart) cuts.unshift(undefined);
          if (openEnd || cuts.length % 2 === 1) cuts.push(undefined);
          // Non-overlapping spans (after, upTo], with holes between them, merged in a shuffled order.
          const spans: MergedSpan[] = [];
          for (let i = 0; i + 1 < cuts.length; i += 2) {
            spans.push({ after: cuts[i], upTo: cuts[i + 1], head: i });
          }
          const order = spans.map((s, i) => ({ s, r: (Math.imul(i + 1, seed) >>> 0) % 97 }));
          order.sort((x, y) => x.r - y.r);
          const cu = joinOf(freshBucket());
          for (const { s } of order) addMerged(cu, s);
          const merged = cu.merged ?? [];
          const afters = merged.map((s) => s.after ?? '');
          expect(afters).toEqual([...afters].sort());
          for (const k of [...queries, ...bounds]) {
            const expected = spans.find(
              (s) => (s.after === undefined || s.after < k) && (s.upTo === undefined || k <= s.upTo),
            );
            expect(spanOf(merged, k)).toBe(expected);
          }
        },
      ),
    );
  });

  it('stops tracking spans once a page came without a head', () => {
    const cu = joinOf(freshBucket());
    addMerged(cu, { after: undefined, upTo: 'm', head: 3 });
    addMerged(cu, undefined);
    addMerged(cu, { after: 'm', upTo: undefined, head: 4 });
    expect(cu.merged).toBeNull();
  });

  it('keeps versions of entries, and past maxKept stops being fresh and forgets them', () => {
    const cu = joinOf(freshBucket());
    keep(cu, [entry('a', 1, 'x'), entry('b', 2)], 2);
    expect(cu.kept.get('a')).toEqual({ hlc: hlc(1, 'rW') });
    expect(cu.kept.get('b')).toEqual({ hlc: hlc(2, 'rW'), deleted: true });
    expect(cu.fresh).toBe(true);
    keep(cu, [entry('c', 3, 'y')], 2);
    expect(cu.fresh).toBe(false);
    expect(cu.kept.size).toBe(0);
    cu.fresh = true;
    cu.kept.set('d', ABSENT);
    boundKept(cu, 0);
    expect(cu.fresh).toBe(false);
  });

  describe('knownVersions', () => {
    it('knows nothing outside a fresh join', () => {
      const { b, cu } = joining([], 0);
      cu.fresh = false;
      expect(knownVersions(b, [seqOp(1, 'k', 1, 1)])).toBeUndefined();
      b.catchUp = null;
      expect(knownVersions(b, [seqOp(1, 'k', 1, 1)])).toBeUndefined();
    });

    it('takes a kept version as what is stored', () => {
      const { b, cu } = joining([], 0);
      cu.kept.set('k', { hlc: hlc(5) });
      cu.kept.set('gone', ABSENT);
      const known = knownVersions(b, [seqOp(1, 'k', 1, 1), seqOp(2, 'gone', 2, 1)]);
      expect(known?.get('k')).toEqual({ hlc: hlc(5) });
      expect(known?.get('gone')).toBe(ABSENT);
    });

    it('knows storage holds nothing of a key no merged page covered', () => {
      const { b } = joining([{ after: 'm', upTo: undefined, head: 10 }], 0);
      const known = knownVersions(b, [seqOp(11, 'a', 11, 1)]);
      expect(known?.has('a')).toBe(true);
      expect(known?.get('a')).toBeUndefined();
    });

    it('knows ops no later than the page head are older than the download', () => {
      const { b } = joining([{ after: undefined, upTo: undefined, head: 10 }], 0);
      expect(knownVersions(b, [seqOp(9, 'a', 9, 1), seqOp(10, 'a', 10, 1)])?.get('a')).toBe(OLDER);
    });

    it("takes the first op after the head's `prev` as the stored state, when the stream is contiguous up to it", () => {
      const { b } = joining([{ after: undefined, upTo: undefined, head: 10 }], 12);
      const first = { ...seqOp(11, 'a', 11, 1), prev: { hlc: hlc(7) } };
      const later = { ...seqOp(12, 'a', 12, 2), prev: { hlc: hlc(11, 'rW') } };
      expect(knownVersions(b, [later, first])?.get('a')).toEqual({ hlc: hlc(7) });
      const absent = { ...seqOp(11, 'z', 11, 1), prev: null };
      const known = knownVersions(b, [absent]);
      expect(known?.has('z')).toBe(true);
      expect(known?.get('z')).toBeUndefined();
    });

    it('leaves a key to be read when its first op after the head has no prev or lies past a gap', () => {
      const { b } = joining([{ after: undefined, upTo: undefined, head: 10 }], 11);
      const noPrev = seqOp(11, 'a', 11, 1);
      const pastGap = { ...seqOp(13, 'b', 13, 1), prev: { hlc: hlc(7) } };
      const known = knownVersions(b, [noPrev, pastGap]);
      expect(known?.has('a')).toBe(false);
      expect(known?.has('b')).toBe(false);
    });
  });
});
