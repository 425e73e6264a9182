import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { lowerBound, upperBound } from './search';

/** A sorted array with repeats, and a range of it. */
const arbCase = fc
  .tuple(
    fc.array(fc.string({ maxLength: 3 }), { maxLength: 40 }),
    fc.string({ maxLength: 3 }),
    fc.nat(),
    fc.nat(),
  )
  .map(([xs, key, a, b]) => {
    const sorted = xs.sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
    const from = a % (sorted.length + 1);
    const to = from + (b % (sorted.length - from + 1));
    return { sorted, key, from, to };
  });

describe('binary search', () => {
  it('finds where a key goes before and after its equals, as a scan does (property)', () => {
    fc.assert(
      fc.property(arbCase, ({ sorted, key, from, to }) => {
        const scan = (stop: (x: string) => boolean) => {
          let i = from;
          while (i < to && !stop(sorted[i] as string)) i++;
          return i;
        };
        expect(lowerBound(sorted, key, from, to)).toBe(scan((x) => x >= key));
        expect(upperBound(sorted, key, from, to)).toBe(scan((x) => x > key));
      }),
    );
  });

  it('searches the whole array by default', () => {
    expect(lowerBound(['a', 'c', 'c', 'e'], 'c')).toBe(1);
    expect(upperBound(['a', 'c', 'c', 'e'], 'c')).toBe(3);
    expect(lowerBound([1, 2, 3], 4)).toBe(3);
    expect(upperBound([], 'a')).toBe(0);
  });
});
