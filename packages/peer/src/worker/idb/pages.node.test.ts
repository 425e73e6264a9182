import { type Entry, encodeValue, packedEntry } from '@mittsync/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  entryAt,
  mergeAndSplit,
  mergeIntoPage,
  PAGE_MAX_ENTRIES,
  PAGE_SPLIT_ENTRIES,
  type Page,
  pageFromRecord,
  pageOf,
  plainEntryAt,
  recordOf,
  splitPage,
} from './pages';

const arbEntry = fc.record({
  key: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 }),
  hlc: fc.string({ minLength: 1, maxLength: 30 }),
  seq: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  deleted: fc.boolean(),
  packed: fc.boolean(),
  // Validation refuses `__proto__` keys (msgpackr would rename them), so storage never sees them.
  value: fc.jsonValue({ maxDepth: 2 }).filter((v) => !JSON.stringify(v).includes('"__proto__"')),
});

type Arb = typeof arbEntry extends fc.Arbitrary<infer T> ? T : never;

/** Sorted, unique entries; some live ones packed (as downloads arrive), some plain. */
function entries(raw: Arb[]): Entry[] {
  const byKey = new Map(raw.map((r) => [r.key, r]));
  return [...byKey.values()]
    .sort((a, b) => (a.key < b.key ? -1 : 1))
    .map((r) =>
      r.deleted
        ? { key: r.key, hlc: r.hlc, seq: r.seq, deleted: true }
        : r.packed
          ? packedEntry(r.key, r.hlc, r.seq, encodeValue(r.value as never))
          : { key: r.key, hlc: r.hlc, seq: r.seq, value: r.value as never },
    );
}

const plain = (page: Page) => page.keys.map((_, i) => plainEntryAt(page, i));
const asJson = (es: readonly Entry[]) => JSON.parse(JSON.stringify(es));

describe('column pages', () => {
  it('merges puts like a map, keeps values byte for byte, and round-trips through records (property)', () => {
    fc.assert(
      fc.property(fc.array(arbEntry, { maxLength: 60 }), fc.array(arbEntry, { maxLength: 60 }), (a, b) => {
        const base = entries(a);
        const puts = entries(b);
        const model = new Map(base.map((e) => [e.key, e]));
        for (const e of puts) model.set(e.key, e);
        const want = [...model.values()].sort((x, y) => (x.key < y.key ? -1 : 1));
        const merged = mergeIntoPage(pageOf('', base), puts);
        expect(asJson(plain(merged))).toEqual(asJson(want));
        // Lazily decoded entries read the same as plain ones.
        expect(asJson(merged.keys.map((_, i) => entryAt(merged, i)))).toEqual(asJson(want));
        // What is stored reads back as the same page.
        const back = pageFromRecord('', structuredClone(recordOf(merged)));
        expect(asJson(plain(back))).toEqual(asJson(want));
      }),
    );
  });

  it('splits an over-full page into even pieces that hold the same entries in order', () => {
    const es: Entry[] = Array.from({ length: Math.ceil(PAGE_SPLIT_ENTRIES * 2.5) }, (_, i) => ({
      key: `k${String(i).padStart(5, '0')}`,
      hlc: `h${i}`,
      seq: i,
      ...(i % 7 === 0 ? { deleted: true as const } : { value: { n: i, s: 'x'.repeat(i % 50) } }),
    }));
    const pieces = splitPage(pageOf('', es));
    expect(pieces.length).toBeGreaterThan(2);
    expect(pieces[0]?.first).toBe('');
    for (const p of pieces.slice(1)) expect(p.first).toBe(p.keys[0]);
    for (const p of pieces) expect(p.keys.length).toBeLessThanOrEqual(PAGE_MAX_ENTRIES);
    const sizes = pieces.map((p) => p.keys.length);
    expect(Math.min(...sizes)).toBeGreaterThanOrEqual(Math.max(...sizes) / 2); // no sliver page
    expect(asJson(pieces.flatMap(plain))).toEqual(asJson(es));
  });

  it('merges and splits in one pass like a merge then a split (property)', () => {
    const filler = (i: number, rev: number): Entry =>
      i % 11 === 0
        ? { key: `k${String(i).padStart(5, '0')}`, hlc: `h${rev}`, seq: i, deleted: true }
        : packedEntry(
            `k${String(i).padStart(5, '0')}`,
            `h${rev}`,
            i,
            encodeValue({ i, s: 'v'.repeat(i % 90) }),
          );
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: Math.round(PAGE_MAX_ENTRIES * 1.5) }),
        fc.uniqueArray(fc.integer({ min: 0, max: PAGE_MAX_ENTRIES * 2 }), {
          maxLength: PAGE_MAX_ENTRIES,
        }),
        (n, picks) => {
          const base = Array.from({ length: n }, (_, i) => filler(i * 2, 1));
          const puts = [...picks].sort((a, b) => a - b).map((i) => filler(i, 2));
          const pieces = mergeAndSplit(pageOf('a', base), puts);
          const one = mergeIntoPage(pageOf('a', base), puts);
          expect(asJson(pieces.flatMap(plain))).toEqual(asJson(plain(one)));
          expect(pieces[0]?.first).toBe('a');
          for (const p of pieces.slice(1)) expect(p.first).toBe(p.keys[0]);
          if (pieces.length > 1) {
            for (const p of pieces) expect(p.keys.length).toBeLessThanOrEqual(PAGE_MAX_ENTRIES);
            const sizes = pieces.map((p) => p.keys.length);
            expect(Math.min(...sizes)).toBeGreaterThanOrEqual(Math.max(...sizes) / 2);
          } else expect(pieces[0]?.keys.length).toBeLessThanOrEqual(PAGE_MAX_ENTRIES);
          // Each piece's values are exactly its own (what is stored is no bigger than needed).
          for (const p of pieces) expect(p.vals.length).toBe(p.ends[p.ends.length - 1] ?? 0);
        },
      ),
      { numRuns: 60 },
    );
  });
});
