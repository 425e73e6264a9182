import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeHlc } from './hlc';
import { PURGED_SLOTS, PurgedKeys, purgedSlot } from './purged-keys';

const hlc = (wall: number, node = 'n1') => encodeHlc(1_700_000_000_000 + wall, 0, node);
// Few keys, so queries often hit a purged key (and its slot).
const key = fc.oneof(fc.constantFrom('a', 'b', 'c', 'user-42/x'), fc.string({ minLength: 1, maxLength: 12 }));

describe('PurgedKeys', () => {
  it('never says a write may be accepted when a purged tombstone of its key is at or above it', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(key, fc.nat(10_000)), { maxLength: 60 }),
        key,
        fc.nat(10_000),
        (purged, k, wall) => {
          const p = new PurgedKeys();
          for (const [pk, w] of purged) p.record(pk, hlc(w));
          const mustRefuse = purged.some(([pk, w]) => pk === k && hlc(w) >= hlc(wall));
          if (mustRefuse) expect(p.undecidable(k, hlc(wall))).toBe(true);
        },
      ),
    );
  });

  it('accepts any write newer than every purged tombstone, and writes to keys of untouched slots', () => {
    const p = new PurgedKeys();
    p.record('gone', hlc(50));
    expect(p.undecidable('gone', hlc(50))).toBe(true);
    expect(p.undecidable('gone', hlc(10))).toBe(true);
    expect(p.undecidable('gone', hlc(51))).toBe(false);
    let other = 'other';
    while (purgedSlot(other) === purgedSlot('gone')) other += 'x';
    expect(p.undecidable(other, hlc(1))).toBe(false);
  });

  it('reports a slot only when its maximum rises, and restores from saved slots', () => {
    const p = new PurgedKeys();
    const s = purgedSlot('a');
    expect(p.record('a', hlc(5))).toBe(s);
    expect(p.record('a', hlc(3))).toBeUndefined();
    expect(p.record('a', hlc(7))).toBe(s);
    const q = new PurgedKeys([[s, hlc(7)]]);
    expect(q.maxFor('a')).toBe(hlc(7));
    expect(q.size).toBe(1);
  });

  it('spreads keys over every slot range', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 20_000; i++) seen.add(purgedSlot(`user-${i}/order`));
    expect(seen.size).toBeGreaterThan(PURGED_SLOTS * 0.95);
    for (const s of seen) expect(s >= 0 && s < PURGED_SLOTS).toBe(true);
  });
});
