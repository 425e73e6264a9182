import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame } from './codec';
import { MittsyncError } from './errors';
import { encodeHlc, MAX_WALL } from './hlc';
import type { Op, SeqOp, Value } from './model';
import { PACKED_OPS, packOps, unpackOps } from './op-pack';
import { validateClientMessage, validateServerMessage } from './validate';
import { msgpack } from './value-codec';

const arbValue = fc
  .jsonValue({ maxDepth: 3 })
  .filter((v) => !JSON.stringify(v).includes('"__proto__"'))
  .map((v) => v as Value);
const arbNode = fc.constantFrom('rA', 'r_b-9', 'x'.repeat(64), 'Vb3kQ9xL2mTz7RwA');
const arbHlc = (node: string) =>
  fc
    .record({
      wall: fc.oneof(fc.integer({ min: 0, max: 2 ** 44 }), fc.constantFrom(0, MAX_WALL)),
      counter: fc.integer({ min: 0, max: 0xffff }),
    })
    .map(({ wall, counter }) => encodeHlc(wall, counter, node));
const arbKey = fc.string({
  minLength: 1,
  maxLength: 12,
  unit: fc.constantFrom('a', 'k', '0', 'é', '日', '😀', '/'),
});

/** An op as a replica pushes it: its HLC's node is its origin. */
const arbOp: fc.Arbitrary<Op> = arbNode.chain((origin) =>
  fc
    .record({
      origin: fc.constant(origin),
      originSeq: fc.oneof(fc.integer({ min: 1, max: 50 }), fc.integer({ min: 0, max: 2 ** 50 })),
      key: arbKey,
      hlc: arbHlc(origin),
      value: fc.option(arbValue, { nil: undefined }),
    })
    .map(({ value, ...o }) =>
      value === undefined ? { ...o, kind: 'del' as const } : { ...o, kind: 'set' as const, value },
    ),
);

/** Ops as the relay delivers them: ascending seqs (mostly consecutive), any prev. */
const arbDelivered: fc.Arbitrary<SeqOp[]> = fc
  .array(
    fc.record({
      op: arbOp,
      gap: fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 1e6 })),
      prev: fc.oneof(
        fc.constant(undefined),
        fc.constant(null),
        arbNode.chain((n) => fc.record({ hlc: arbHlc(n), deleted: fc.boolean() })),
      ),
    }),
    { maxLength: 30 },
  )
  .chain((xs) =>
    fc.integer({ min: 0, max: 2 ** 40 }).map((start) => {
      let seq = start;
      return xs.map(({ op, gap, prev }) => {
        seq += gap;
        const out: SeqOp = { ...op, seq };
        if (prev !== undefined)
          out.prev =
            prev === null ? null : prev.deleted ? { hlc: prev.hlc, deleted: true } : { hlc: prev.hlc };
        return out;
      });
    }),
  );

const sum = { count: 3, a: 1, b: 2 };
/** JSON's view of a value: what both encodings must agree on. */
const plain = (x: unknown) => JSON.parse(JSON.stringify(x));

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof MittsyncError ? e.code : `not a MittsyncError: ${String(e)}`;
  }
  return undefined;
}

describe('packed ops', () => {
  it('round-trips delivered ops exactly, as the tuples do (property)', () => {
    fc.assert(
      fc.property(arbDelivered, (ops) => {
        const msg = { type: 'deliver' as const, bucket: 'b1', ops, sum };
        const frame = encodeFrame(msg, 'msgpack', { packOps: true });
        expect((msgpack.unpack(frame) as { ops: unknown }).ops).toBeInstanceOf(Uint8Array);
        const back = validateServerMessage(decodeFrame(frame));
        expect(plain(back)).toEqual(plain(msg));
        expect(back).toEqual(decodeFrame(encodeFrame(msg)));
      }),
    );
  });

  it('round-trips pushed ops through the relay-side validation (property)', () => {
    fc.assert(
      fc.property(fc.array(arbOp, { minLength: 1, maxLength: 30 }), (all) => {
        // Pushed originSeqs start at 1 (0 is the relay's, on tombstones it announces again).
        const ops = all.map((o) => ({ ...o, originSeq: Math.max(1, o.originSeq) }));
        const msg = { type: 'push' as const, bucket: 'b1', ops };
        const frame = encodeFrame(msg, 'msgpack', { packOps: true });
        expect((msgpack.unpack(frame) as { ops: unknown }).ops).toBeInstanceOf(Uint8Array);
        const back = decodeFrame(frame);
        expect(back).toEqual(decodeFrame(encodeFrame(msg)));
        expect(plain(validateClientMessage(back))).toEqual(plain(msg));
      }),
    );
  });

  it('falls back to tuples for ops it cannot say exactly', () => {
    const op: SeqOp = {
      origin: 'rA',
      originSeq: 1,
      key: 'k',
      kind: 'set',
      value: 1,
      hlc: encodeHlc(5, 0, 'rA'),
      seq: 3,
    };
    expect(packOps([op], true)).toBeInstanceOf(Uint8Array);
    expect(packOps([{ ...op, hlc: encodeHlc(5, 0, 'rB') }], true)).toBeUndefined(); // node is not the origin
    expect(packOps([op, { ...op, seq: 3 }], true)).toBeUndefined(); // seqs do not ascend
    expect(packOps([{ ...op, key: '\ud800' }], true)).toBeUndefined(); // no UTF-8 form
    expect(packOps([{ ...op, value: undefined }], true)).toBeUndefined(); // a set without a value
    expect(packOps([{ ...op, hlc: 'nope' }], false)).toBeUndefined();
    // And the frame still goes, as tuples, for the validator on the other side to judge.
    const frame = encodeFrame(
      { type: 'push', bucket: 'b', ops: [{ ...op, hlc: encodeHlc(5, 0, 'rB') }] },
      'msgpack',
      {
        packOps: true,
      },
    );
    expect(Array.isArray((msgpack.unpack(frame) as { ops: unknown }).ops)).toBe(true);
  });

  it('takes about 10 bytes per op beyond key and value for updates of a day-old key', () => {
    const ops: SeqOp[] = Array.from({ length: 100 }, (_, i) => {
      const origin = ['Vb3kQ9xL2mTz7RwA', 'p0Yh5sNc8EuJ1dGf'][i % 2] as string;
      return {
        origin,
        originSeq: 1000 + (i >> 1),
        key: `k${i}`,
        kind: 'set',
        value: i,
        hlc: encodeHlc(1_800_000_000_000 + i, i % 3, origin),
        seq: 500 + i,
        prev: { hlc: encodeHlc(1_800_000_000_000 - 86_000_000 + i * 13, 0, 'p0Yh5sNc8EuJ1dGf') },
      };
    });
    const packed = packOps(ops, true) as Uint8Array;
    const payload = ops.reduce((s, o) => s + o.key.length + msgpack.pack(o.value).length, 0);
    expect((packed.length - payload) / ops.length).toBeLessThan(12);
    expect(unpackOps(packed, true)).toEqual(ops);
  });

  describe('refuses malformed bytes with a typed error', () => {
    const op: SeqOp = {
      origin: 'rA',
      originSeq: 1,
      key: 'kk',
      kind: 'set',
      value: 'v',
      hlc: encodeHlc(5, 0, 'rA'),
      seq: 3,
      prev: null,
    };
    const good = packOps([op], true) as Uint8Array;
    // [layout, frame flags, count, dict size, len, 'r', 'A', flags, origin, seq delta, wall, key len, 'k', 'k', value...]
    const edit = (at: number, b: number) => {
      const c = good.slice();
      c[at] = b;
      return c;
    };
    const cases: [string, Uint8Array, string, boolean?][] = [
      ['an unknown layout', edit(0, 9), 'BAD_FRAME'],
      ['pushed ops decoded as delivered', packOps([op], false) as Uint8Array, 'BAD_FRAME'],
      ['delivered ops decoded as pushed', good, 'BAD_FRAME', false],
      ['a count larger than the frame', edit(2, 0x7f), 'BAD_FRAME'],
      ['truncated', good.slice(0, good.length - 1), 'BAD_FRAME'],
      ['bytes left over', new Uint8Array([...good, 0]), 'BAD_FRAME'],
      ['a replicaId that is not one', edit(6, 0x2e), 'BAD_MESSAGE'],
      ['an origin index outside the dictionary', edit(8, 5), 'BAD_FRAME'],
      ['a key that is not UTF-8', edit(12, 0xff), 'BAD_MESSAGE'],
      ['an empty key', new Uint8Array([...good.slice(0, 11), 0, ...good.slice(14)]), 'BAD_MESSAGE'],
      [
        'a value that is an extension type',
        new Uint8Array([...good.slice(0, 14), 0xd5, 1, 0, 0]),
        'BAD_MESSAGE',
      ],
      ['a value string that is not UTF-8', new Uint8Array([...good.slice(0, 14), 0xa1, 0xc3]), 'BAD_MESSAGE'],
      ['a reserved byte', new Uint8Array([...good.slice(0, 14), 0xc1]), 'BAD_FRAME'],
      [
        'a wall time past 2^48',
        new Uint8Array([
          ...good.slice(0, 10),
          0x80,
          0x80,
          0x80,
          0x80,
          0x80,
          0x80,
          0x80,
          0x01,
          ...good.slice(11),
        ]),
        'BAD_HLC',
      ],
      [
        'a varint of 9 bytes',
        new Uint8Array([
          ...good.slice(0, 10),
          0xff,
          0xff,
          0xff,
          0xff,
          0xff,
          0xff,
          0xff,
          0xff,
          0x01,
          ...good.slice(11),
        ]),
        'BAD_FRAME',
      ],
      ['a prev counter without a prev', edit(7, 0x80 | 0x20 | 0x0a), 'BAD_FRAME'],
    ];
    for (const [name, bytes, code, withSeqs] of cases)
      it(`${name}: ${code}`, () => {
        expect(codeOf(() => unpackOps(bytes, withSeqs ?? true))).toBe(code);
      });

    it('never throws anything but a typed error on random edits (property)', () => {
      fc.assert(
        fc.property(
          fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { minLength: 1, maxLength: 4 }),
          fc.boolean(),
          (edits, withSeqs) => {
            const c = good.slice();
            for (const [at, b] of edits) c[at % c.length] = b;
            const code = codeOf(() => unpackOps(c, withSeqs));
            expect([undefined, 'BAD_FRAME', 'BAD_MESSAGE', 'BAD_HLC']).toContain(code);
          },
        ),
      );
    });

    it('layout version is the one hello and welcome announce', () => {
      expect(good[0]).toBe(PACKED_OPS);
      expect(unpackOps(good, true)).toEqual([op]);
    });
  });
});
