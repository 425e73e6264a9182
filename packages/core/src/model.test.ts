import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checksumEquals, checksumOf } from './checksum';
import { encodeHlc } from './hlc';
import { type Entry, mergeEntry } from './model';

const arbEntry = fc
  .record({
    wall: fc.integer({ min: 0, max: 20 }),
    counter: fc.integer({ min: 0, max: 3 }),
    node: fc.constantFrom('rA', 'rB', 'rC'),
  })
  .map(({ wall, counter, node }): Entry => {
    // The same version always describes the same write (HLCs are unique per write).
    const hlc = encodeHlc(wall, counter, node);
    const seed = wall * 7 + counter * 3 + node.charCodeAt(1);
    return seed % 4 === 0 ? { key: 'k', hlc, seq: 0, deleted: true } : { key: 'k', hlc, seq: 0, value: seed };
  });

const fold = (es: Entry[]) => es.reduce<Entry | undefined>((acc, e) => mergeEntry(acc, e), undefined);

describe('LWW merge', () => {
  it('is commutative', () => {
    fc.assert(
      fc.property(arbEntry, arbEntry, (a, b) => {
        expect(mergeEntry(a, b)).toEqual(mergeEntry(b, a));
      }),
    );
  });

  it('is associative', () => {
    fc.assert(
      fc.property(arbEntry, arbEntry, arbEntry, (a, b, c) => {
        expect(mergeEntry(mergeEntry(a, b), c)).toEqual(mergeEntry(a, mergeEntry(b, c)));
      }),
    );
  });

  it('is idempotent', () => {
    fc.assert(
      fc.property(arbEntry, (a) => {
        expect(mergeEntry(a, a)).toEqual(a);
      }),
    );
  });

  it('scenario 8: ops reordered within and across senders give the same final state', () => {
    fc.assert(
      fc.property(
        fc.array(arbEntry, { minLength: 1, maxLength: 30 }),
        fc.infiniteStream(fc.nat()),
        (es, rnd) => {
          const shuffled = [...es];
          const it = rnd[Symbol.iterator]();
          for (let i = shuffled.length - 1; i > 0; i--) {
            const j = (it.next().value as number) % (i + 1);
            [shuffled[i], shuffled[j]] = [shuffled[j] as Entry, shuffled[i] as Entry];
          }
          expect(fold(shuffled)).toEqual(fold(es));
        },
      ),
    );
  });

  it('scenario 25: a concurrent write and delete of one key resolve to the greater HLC, everywhere', () => {
    const put: Entry = { key: 'k', hlc: encodeHlc(100, 0, 'rA'), seq: 0, value: 1 };
    const del: Entry = { key: 'k', hlc: encodeHlc(100, 0, 'rB'), seq: 0, deleted: true };
    expect(mergeEntry(put, del)).toBe(del);
    expect(mergeEntry(del, put)).toBe(del);
    const laterPut: Entry = { ...put, hlc: encodeHlc(101, 0, 'rA') };
    expect(mergeEntry(del, laterPut)).toBe(laterPut);
  });

  it('keeps an order-independent checksum over live entries', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.string({ minLength: 1, maxLength: 8 }), { maxLength: 40 }), (keys) => {
        const es: Entry[] = keys.map((key, i) => ({ key, hlc: encodeHlc(i, 0, 'rA'), seq: i, value: i }));
        expect(checksumEquals(checksumOf(es), checksumOf([...es].reverse()))).toBe(true);
      }),
    );
  });
});
