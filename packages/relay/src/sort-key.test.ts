import { keyOrder } from '@mittsync/core/model';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  readSortKey,
  SortKeyWriter,
  sortKey,
  sortKeyIsNotUtf8,
  sortKeyLength,
  writeSortKey,
} from './sort-key';

/** Byte-wise order, as SQLite compares BLOBs. */
function memcmp(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return (a[i] as number) - (b[i] as number);
  return a.length - b.length;
}

const sign = (n: number) => Math.sign(n);
const byKeyOrder = (a: string, b: string) => keyOrder({ key: a }, { key: b });

/** Strings of any UTF-16 code units, weighted to the ones where UTF-8 and UTF-16 orders part. */
const unit = fc.oneof(
  fc.constantFrom(
    'a',
    '~',
    'é',
    '\u07ff',
    '\u0800',
    '\uD7FF',
    '\uE000',
    '！',
    '\uFFFD',
    '\uFFFF',
    '😀',
    '\u{10000}',
    '\u{10FFFF}',
  ),
  fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
);
const anyString = fc.array(unit, { maxLength: 12 }).map((us) => us.join(''));

/** Strings of code points below U+10000 other than surrogates: no surrogate pair in them. */
const bmpString = fc
  .array(
    fc.integer({ min: 0, max: 0xffff - 0x800 }).map((c) => String.fromCharCode(c < 0xd800 ? c : c + 0x800)),
    { maxLength: 20 },
  )
  .map((cs) => cs.join(''));

describe('sort keys', () => {
  it('order byte-wise exactly as keyOrder orders the strings (UTF-16 code units)', () => {
    fc.assert(
      fc.property(anyString, anyString, (a, b) => {
        expect(sign(memcmp(sortKey(a), sortKey(b)))).toBe(sign(byKeyOrder(a, b)));
      }),
      { numRuns: 5000 },
    );
    // Where UTF-8 (SQLite's TEXT order) disagrees.
    const keys = ['a\uFF01', 'a\u{1F600}', 'a\uE000', 'ab', 'a\uD7FF', 'a\u{10FFFF}', 'a\uFFFD', 'a'];
    const bySortKey = [...keys].sort((x, y) => memcmp(sortKey(x), sortKey(y)));
    expect(bySortKey).toEqual([...keys].sort());
    expect(bySortKey.indexOf('a\u{1F600}')).toBeLessThan(bySortKey.indexOf('a\uFF01'));
  });

  it('read back as the string they were written from', () => {
    fc.assert(
      fc.property(anyString, (s) => {
        expect(readSortKey(sortKey(s))).toBe(s);
      }),
    );
  });

  it('are the UTF-8 of a key without surrogates, and 3 bytes per surrogate (6 per pair)', () => {
    fc.assert(
      fc.property(bmpString, (s) => {
        expect(sortKeyIsNotUtf8(s)).toBe(false);
        expect(sortKey(s)).toEqual(new TextEncoder().encode(s));
      }),
    );
    fc.assert(
      fc.property(anyString, (s) => {
        expect(sortKeyLength(s)).toBe(sortKey(s).length);
        expect(sortKeyIsNotUtf8(s)).toBe(/[\uD800-\uDFFF]/.test(s));
      }),
    );
    expect([...sortKey('\u{1F600}')]).toEqual([0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80]);
    expect([...sortKey('！')]).toEqual([0xef, 0xbc, 0x81]);
  });

  it('writes at an offset and into a reused buffer that grows for long keys', () => {
    const out = new Uint8Array(16).fill(0xaa);
    expect(writeSortKey(out, 2, 'a😀')).toBe(9);
    expect([...out.subarray(0, 10)]).toEqual([0xaa, 0xaa, 0x61, 0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80, 0xaa]);
    const w = new SortKeyWriter();
    expect(w.of('k！')).toEqual(sortKey('k！'));
    const long = '日'.repeat(5000);
    expect(w.of(long)).toEqual(sortKey(long));
    expect(w.of('x')).toEqual(new Uint8Array([0x78]));
  });
});
