import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeFrame } from './codec';
import { columnsOf, valueBytesOf } from './columns';
import { encodeHlc } from './hlc';
import type { Entry, Value } from './model';
import { packedEntry } from './packed';
import { decodeValue, encodeValue, encodeValueView } from './value-codec';

// `__proto__` keys are refused by validation (see validate.test.ts), so they never reach a value.
const arbValue = fc
  .jsonValue({ maxDepth: 4 })
  .filter((v) => !JSON.stringify(v).includes('"__proto__"'))
  .map((v) => v as Value);

describe('value codec', () => {
  it('decodes what it encodes, in bytes of their own or as a view of the same bytes (property)', () => {
    fc.assert(
      fc.property(arbValue, (v) => {
        const own = encodeValue(v);
        const view = encodeValueView(v);
        expect([...own]).toEqual([...view]);
        expect(own.byteOffset).toBe(0);
        expect(own.byteLength).toBe(own.buffer.byteLength);
        // As JSON: a value is JSON, where -0 is 0 (and MessagePack writes it as the integer 0).
        expect(decodeValue(own)).toEqual(JSON.parse(JSON.stringify(v)));
      }),
    );
  });

  it('keeps an encoded value intact through later encodings', () => {
    const first = encodeValueView({ title: 'milk' });
    const copy = [...first];
    for (let i = 0; i < 2000; i++) encodeValueView({ i, s: 'x'.repeat(i % 300) });
    expect([...first]).toEqual(copy);
    expect(decodeValue(first)).toEqual({ title: 'milk' });
  });

  it('gives a value the same bytes in a page frame, a column page and a packed entry (property)', () => {
    const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
    fc.assert(
      fc.property(arbValue, (v) => {
        const bytes = hex(encodeValue(v));
        const hlc = encodeHlc(1000, 0, 'rA');
        const plain: Entry = { key: 'k', hlc, seq: 1, value: v };
        const packed = packedEntry('k', hlc, 1, encodeValue(v));
        const page = (e: Entry) =>
          encodeFrame({ type: 'page', bucket: 'b', reqId: 1, entries: [e], next: null });
        expect(hex(page(plain))).toContain(bytes);
        expect(hex(page(packed))).toContain(bytes);
        expect(hex(valueBytesOf(plain))).toBe(bytes);
        expect(hex(columnsOf([plain]).vals)).toBe(bytes);
      }),
    );
  });
});
