import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame } from './codec';
import { encodeHlc } from './hlc';
import type { Entry, Value } from './model';
import { packedEntry } from './packed';
import type { ServerMessage } from './protocol';
import { validateServerMessage } from './validate';

// `__proto__` keys are refused by validation (see validate.test.ts), so they never reach a frame.
const arbValue = fc
  .jsonValue({ maxDepth: 4 })
  .filter((v) => !JSON.stringify(v).includes('"__proto__"'))
  .map((v) => v as Value);
const arbOp = fc.record(
  {
    origin: fc.constantFrom('rA', 'rB'),
    originSeq: fc.integer({ min: 1, max: 1e9 }),
    key: fc.string({ minLength: 1, maxLength: 20 }),
    kind: fc.constant('set' as const),
    value: arbValue,
    hlc: fc.integer({ min: 0, max: 2 ** 40 }).map((w) => encodeHlc(w, 3, 'rA')),
    seq: fc.integer({ min: 1, max: 1e9 }),
    // What the relay says the key was before the op: absent (null), live, a tombstone, or nothing.
    prev: fc
      .option(
        fc.record(
          {
            hlc: fc.integer({ min: 0, max: 2 ** 40 }).map((w) => encodeHlc(w, 1, 'rB')),
            deleted: fc.constant(true as const),
          },
          { requiredKeys: ['hlc'] },
        ),
        { nil: undefined, freq: 3 },
      )
      .chain((p) => (p === undefined ? fc.constantFrom(undefined, null) : fc.constant(p))),
  },
  { requiredKeys: ['origin', 'originSeq', 'key', 'kind', 'value', 'hlc', 'seq'] },
);

describe('wire codec', () => {
  it('round-trips every message through msgpack and JSON (property)', () => {
    fc.assert(
      fc.property(
        fc.array(arbOp, { maxLength: 20 }),
        fc.constantFrom('msgpack' as const, 'json' as const),
        (ops, format) => {
          const msg: ServerMessage = {
            type: 'deliver',
            bucket: 'b1',
            ops,
            sum: { count: ops.length, a: 1, b: 2 },
          };
          const back = validateServerMessage(decodeFrame(encodeFrame(msg, format), format));
          expect(JSON.parse(JSON.stringify(back))).toEqual(JSON.parse(JSON.stringify(msg)));
        },
      ),
    );
  });

  it('writes page frames with packed values byte for byte, decoding to the same message (property)', () => {
    const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });
    const arbEntry = fc.record({
      // Short and long keys, non-ASCII included, to cover every string header size.
      key: fc.oneof(
        fc.string({ minLength: 1, maxLength: 40 }),
        fc.string({ minLength: 250, maxLength: 260 }),
        fc.string({ unit: 'grapheme', minLength: 1, maxLength: 300 }),
      ),
      hlc: fc.integer({ min: 0, max: 2 ** 46 }).map((w) => encodeHlc(w, 7, 'rB')),
      seq: fc.oneof(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER })),
      deleted: fc.boolean(),
      value: arbValue,
    });
    fc.assert(
      fc.property(
        fc.array(arbEntry, { maxLength: 40 }),
        fc.option(fc.string(), { nil: null }),
        (raw, next) => {
          const plain: Entry[] = raw.map((e) =>
            e.deleted
              ? { key: e.key, hlc: e.hlc, seq: e.seq, deleted: true }
              : { key: e.key, hlc: e.hlc, seq: e.seq, value: e.value },
          );
          const packed = raw.map((e) =>
            e.deleted
              ? { key: e.key, hlc: e.hlc, seq: e.seq, deleted: true }
              : packedEntry(e.key, e.hlc, e.seq, packr.pack(e.value)),
          );
          const msg = (entries: Entry[]): ServerMessage => ({
            type: 'page',
            bucket: 'b1',
            reqId: 7,
            entries,
            next,
          });
          const fast = encodeFrame(msg(packed));
          const back = validateServerMessage(decodeFrame(fast));
          const json = (x: unknown) => JSON.parse(JSON.stringify(x));
          expect(json(back)).toEqual(json(validateServerMessage(decodeFrame(encodeFrame(msg(plain))))));
          expect(json(back)).toEqual(json(msg(plain)));
          // The lazy page decoder reads what msgpackr reads.
          const slow = packr.unpack(fast) as { entries: unknown[][] };
          expect(json(back)).toEqual(
            json({
              ...slow,
              entries: slow.entries.map(([key, hlc, seq, d, value]) =>
                d === 1 ? { key, hlc, seq, deleted: true } : { key, hlc, seq, value },
              ),
            }),
          );
          // Packed entries read like plain ones, and the JSON format decodes their values.
          // (As JSON: MessagePack, like JSON, does not keep -0 apart from 0.)
          expect(JSON.stringify(packed.map((e) => (e.deleted ? null : e.value)))).toBe(
            JSON.stringify(plain.map((e) => (e.deleted ? null : e.value))),
          );
          expect(decodeFrame(encodeFrame(msg(packed), 'json'), 'json')).toEqual(
            decodeFrame(encodeFrame(msg(plain), 'json'), 'json'),
          );
        },
      ),
    );
  });

  it('packs ops as tuples, far smaller than JSON objects', () => {
    const ops = Array.from({ length: 100 }, (_, i) => ({
      origin: 'rA',
      originSeq: i + 1,
      key: `k${i}`,
      kind: 'set',
      value: i,
      hlc: encodeHlc(i, 0, 'rA'),
      seq: i + 1,
    }));
    const packed = encodeFrame({ type: 'deliver', bucket: 'b', ops, sum: { count: 0, a: 0, b: 0 } });
    const keyed = JSON.stringify({ type: 'deliver', bucket: 'b', ops, sum: { count: 0, a: 0, b: 0 } });
    expect(packed.length).toBeLessThan(keyed.length * 0.6);
  });

  it('turns garbage into BAD_FRAME (or BAD_MESSAGE for strings not UTF-8), never a crash', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          decodeFrame(bytes);
        } catch (e) {
          // BAD_MESSAGE: a string that is not UTF-8 or an extension type (frame-strings.ts).
          expect(['BAD_FRAME', 'BAD_MESSAGE']).toContain((e as { code?: unknown }).code);
        }
      }),
    );
    expect(() => decodeFrame(new TextEncoder().encode('{nope'), 'json')).toThrowError(
      expect.objectContaining({ code: 'BAD_FRAME' }),
    );
  });

  it('never decodes a cut-off page frame as a shorter page', () => {
    const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });
    const entries = Array.from({ length: 5 }, (_, i) =>
      packedEntry(`k${i}`, encodeHlc(1000 + i, 0, 'rA'), i + 1, packr.pack({ n: i, s: 'é'.repeat(i) })),
    );
    const frame = encodeFrame({ type: 'page', bucket: 'b', reqId: 1, entries, next: null });
    for (let cut = 0; cut < frame.length; cut++) {
      expect(() => validateServerMessage(decodeFrame(frame.subarray(0, cut)))).toThrowError(
        expect.objectContaining({ code: 'BAD_FRAME' }),
      );
    }
    const whole = validateServerMessage(decodeFrame(frame)) as { entries: Entry[] };
    expect(whole.entries.map((e) => e.value)).toEqual(entries.map((e) => e.value));
  });
});
