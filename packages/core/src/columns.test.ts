import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checksumAdd, emptyChecksum } from './checksum';
import { decodeFrame, encodeFrame } from './codec';
import {
  type ColumnRange,
  checksumAddIn,
  columnEntries,
  columnSize,
  columnsOf,
  decodeColumns,
  encodeColumns,
  hlcAt,
  indexIn,
  keyAt,
  lowerBoundIn,
  maxHlcIn,
  rangeEntries,
} from './columns';
import { encodeHlc } from './hlc';
import { MemoryReplicaStorage } from './memory-storage';
import { type Entry, keyOrder, type Value } from './model';
import type { PageMsg } from './protocol';
import { validateServerMessage } from './validate';

const arbValue = fc
  .jsonValue({ maxDepth: 3 })
  .filter((v) => !JSON.stringify(v).includes('"__proto__"'))
  .map((v) => v as Value);

/** Sorted, unique entries; keys of any characters (surrogate pairs and lone ones excluded). */
const arbEntries = fc
  .uniqueArray(
    fc.record({
      key: fc.string({
        minLength: 1,
        maxLength: 12,
        unit: fc.constantFrom('a', 'b', 'k', '0', 'é', 'ж', '日', '😀', ''),
      }),
      wall: fc.integer({ min: 0, max: 2 ** 44 }),
      node: fc.constantFrom('rA', 'r_b-9', 'x'.repeat(64)),
      seq: fc.integer({ min: 0, max: 2 ** 40 }),
      value: fc.option(arbValue, { nil: undefined }),
    }),
    { selector: (e) => e.key, maxLength: 40 },
  )
  .map((list) =>
    list
      .filter((e) => e.key.length > 0)
      .map(
        (e): Entry =>
          e.value === undefined
            ? { key: e.key, hlc: encodeHlc(e.wall, 0, e.node), seq: e.seq, deleted: true }
            : { key: e.key, hlc: encodeHlc(e.wall, 1, e.node), seq: e.seq, value: e.value },
      )
      .sort(keyOrder),
  );

const plain = (es: readonly Entry[]) => JSON.parse(JSON.stringify(es));

describe('entry columns', () => {
  it('round-trips any sorted entries through the packed layout, at any alignment', () => {
    fc.assert(
      fc.property(arbEntries, fc.integer({ min: 0, max: 7 }), (entries, shift) => {
        const bytes = encodeColumns(columnsOf(entries));
        const shifted = new Uint8Array(bytes.length + shift);
        shifted.set(bytes, shift);
        const c = decodeColumns(shifted.subarray(shift));
        expect(columnSize(c)).toBe(entries.length);
        expect(plain(columnEntries(c))).toEqual(plain(entries));
        entries.forEach((e, i) => {
          expect(keyAt(c, i)).toBe(e.key);
          expect(hlcAt(c, i)).toBe(e.hlc);
          expect(indexIn(c, e.key)).toBe(i);
          expect(lowerBoundIn(c, e.key)).toBe(i);
        });
        expect(indexIn(c, '\u0000')).toBe(-1);
        expect(maxHlcIn(c)).toBe(
          entries
            .map((e) => e.hlc)
            .sort()
            .at(-1) ?? '',
        );
      }),
      { numRuns: 300 },
    );
  });

  it('adds to a checksum exactly as checksumAdd does, whatever the characters', () => {
    fc.assert(
      fc.property(arbEntries, (entries) => {
        const c = columnsOf(entries);
        const byColumns = emptyChecksum();
        const byStrings = emptyChecksum();
        entries.forEach((e, i) => {
          checksumAddIn(byColumns, c, i);
          checksumAdd(byStrings, e.key, e.hlc);
        });
        expect(byColumns).toEqual(byStrings);
      }),
    );
    // Pinned: stored and relay checksums must not change with the code that computes them.
    const sum = emptyChecksum();
    checksumAdd(sum, 'k0000001', '0193a1b2c3d40000r_abc');
    checksumAdd(sum, 'ключ', '0193a1b2c3d40001r_abc');
    expect(sum).toEqual({ count: 2, a: 2621022901, b: 396249964 });
  });

  it('travels as a page frame field and validates as a page', () => {
    const entries: Entry[] = [
      { key: 'a', hlc: encodeHlc(1, 0, 'rA'), seq: 1, value: { n: 1 } },
      { key: 'b', hlc: encodeHlc(2, 0, 'rA'), seq: 2, deleted: true },
    ];
    const frame = encodeFrame({
      type: 'page',
      bucket: 'b',
      reqId: 3,
      entries: [],
      cols: columnsOf(entries),
      next: null,
    });
    const msg = validateServerMessage(decodeFrame(frame)) as PageMsg;
    expect(msg.entries).toEqual([]);
    expect(plain(columnEntries(msg.cols as never))).toEqual(plain(entries));
    // Columns have no JSON form.
    expect(() =>
      encodeFrame(
        { type: 'page', bucket: 'b', reqId: 3, entries: [], cols: columnsOf(entries), next: null },
        'json',
      ),
    ).toThrow(/binary/);
  });

  it('refuses malformed column pages with BAD_FRAME', () => {
    const hlc = (w: number) => encodeHlc(w, 0, 'rA');
    const good = encodeColumns(
      columnsOf([
        { key: 'a', hlc: hlc(1), seq: 1, value: 1 },
        { key: 'b', hlc: hlc(2), seq: 2, value: 'x' },
      ]),
    );
    const bad = (mutate: (b: Uint8Array, dv: DataView) => void) => {
      const b = good.slice();
      mutate(b, new DataView(b.buffer));
      return b;
    };
    const cases: [string, Uint8Array][] = [
      ['truncated', good.subarray(0, good.length - 1)],
      ['unknown layout', bad((_b, dv) => dv.setUint8(0, 9))],
      ['count too big', bad((_b, dv) => dv.setUint32(4, 3, true))],
      // Two entries: header 24, seqs 16, three ends columns 8 each, then keys at 64, versions at 66.
      ['keys out of order', bad((b) => b.set([0x62, 0x61], 64))],
      // Values at 102: 0x01, then 0xa1 0x78 ('x'); 0xc1 is no MessagePack type, 0xa2 overruns.
      [
        'not a value',
        bad((b) => {
          b[103] = 0xc1;
        }),
      ],
      [
        'value overrunning its end',
        bad((b) => {
          b[102] = 0xa1;
        }),
      ],
      [
        'bad version',
        bad((b) => {
          b[66 + 2] = 0x47;
        }),
      ],
      ['seq not an integer', bad((_b, dv) => dv.setFloat64(24, 1.5, true))],
      ['key ends going down', bad((_b, dv) => dv.setUint32(40, 2, true))],
      ['value ends past the values', bad((_b, dv) => dv.setUint32(60, 99, true))],
    ];
    for (const [what, bytes] of cases) {
      expect(() => decodeColumns(bytes), what).toThrow(expect.objectContaining({ code: 'BAD_FRAME' }));
    }
    // Invalid UTF-8 in a key.
    const utf8 = encodeColumns(columnsOf([{ key: 'é', hlc: hlc(1), seq: 1, value: 1 }]));
    utf8[24 + 8 + 4 + 4 + 4] = 0xff;
    expect(() => decodeColumns(utf8)).toThrow(expect.objectContaining({ code: 'BAD_FRAME' }));
    expect(decodeColumns(good).keyEnds.length).toBe(2);
  });

  it('refuses to pack a key with a lone surrogate (it has no UTF-8 form)', () => {
    const hlc = encodeHlc(1, 0, 'rA');
    expect(() => columnsOf([{ key: 'a\uD800', hlc, seq: 1, value: 1 }])).toThrow(
      expect.objectContaining({ code: 'BAD_MESSAGE' }),
    );
    expect(keyAt(columnsOf([{ key: 'a\uD83D\uDE00', hlc, seq: 1, value: 1 }]), 0)).toBe('a😀');
  });

  it('is taken by a columnar store as ranges, each entry read back as it was', async () => {
    const s = new MemoryReplicaStorage();
    const entries: Entry[] = Array.from({ length: 20 }, (_, i) => ({
      key: `k${String(i).padStart(2, '0')}`,
      hlc: encodeHlc(i + 1, 0, 'rA'),
      seq: i + 1,
      ...(i % 5 === 4 ? { deleted: true } : { value: { i } }),
    }));
    const c = columnsOf(entries);
    const ranges: ColumnRange[] = [
      { c, from: 0, to: 7 },
      { c, from: 9, to: 20 },
    ];
    await s.commit({ bucket: 'b', columns: ranges });
    const got = await s.scan('b', { includeDeleted: true });
    expect(plain(got)).toEqual(plain(ranges.flatMap(rangeEntries)));
    expect(got.map((e) => e.key)).not.toContain('k07');
  });
});
