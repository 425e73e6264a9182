import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame } from './codec';
import { encodeHlc } from './hlc';
import type { Value } from './model';
import type { ServerMessage } from './protocol';
import { validateServerMessage } from './validate';

const arbValue = fc.jsonValue({ maxDepth: 4 }).map((v) => v as Value);
const arbOp = fc.record({
  origin: fc.constantFrom('rA', 'rB'),
  originSeq: fc.integer({ min: 1, max: 1e9 }),
  key: fc.string({ minLength: 1, maxLength: 20 }),
  kind: fc.constant('set' as const),
  value: arbValue,
  hlc: fc.integer({ min: 0, max: 2 ** 40 }).map((w) => encodeHlc(w, 3, 'rA')),
  seq: fc.integer({ min: 1, max: 1e9 }),
});

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

  it('turns garbage into BAD_FRAME, never a crash', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          decodeFrame(bytes);
        } catch (e) {
          expect(e).toMatchObject({ code: 'BAD_FRAME' });
        }
      }),
    );
    expect(() => decodeFrame(new TextEncoder().encode('{nope'), 'json')).toThrowError(
      expect.objectContaining({ code: 'BAD_FRAME' }),
    );
  });
});
