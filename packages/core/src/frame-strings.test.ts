import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame } from './codec';
import { MittsyncError } from './errors';
import { checkFrameStrings } from './frame-strings';
import { encodeHlc } from './hlc';
import { isUtf8 } from './utf8';
import { msgpack } from './value-codec';

const MARK = 'ZQZQ'; // four ASCII bytes, replaced in the encoded frame by four invalid ones

/** Four-byte sequences that are not UTF-8 (each decodes leniently to some string). */
const INVALID: readonly (readonly number[])[] = [
  [0x61, 0xff, 0x62, 0x63], // a byte that never appears in UTF-8
  [0xed, 0xa0, 0x80, 0x61], // an encoded surrogate (U+D800)
  [0xc3, 0x41, 0x61, 0x61], // a lead byte without its continuation (msgpackr reads `Á`)
  [0xc0, 0xaf, 0x61, 0x61], // overlong `/`
  [0xe0, 0x80, 0xaf, 0x61], // overlong, three bytes
  [0xf4, 0x90, 0x80, 0x80], // past U+10FFFF
  [0x61, 0x61, 0x61, 0xe2], // truncated at the end of the string
  [0x80, 0x61, 0x61, 0x61], // a lone continuation byte
];

// Well-formed strings of any code points (astral ones and U+FFFD included).
const arbText = fc.string({ unit: 'binary', maxLength: 12 });
// Through JSON: msgpackr writes -0 as the integer 0, which is not what this test is about.
const arbValue = fc
  .jsonValue({ maxDepth: 3, stringUnit: 'binary' })
  .map((v) => JSON.parse(JSON.stringify(v)) as unknown)
  .filter((v) => !JSON.stringify(v).includes('"__proto__"'));
const arbPush = fc.record({
  type: fc.constant('push'),
  bucket: arbText,
  ops: fc.array(
    fc.record({
      origin: fc.constant('rA'),
      originSeq: fc.nat(),
      key: arbText,
      kind: fc.constant('set'),
      value: arbValue,
      hlc: fc.nat({ max: 2 ** 40 }).map((w) => encodeHlc(w, 0, 'rA')),
    }),
    { maxLength: 4 },
  ),
});

/** Where in a push the marked string goes: every kind of string a frame holds. */
type Spot = 'bucket' | 'key' | 'value string' | 'value map key' | 'field name' | 'origin';

function marked(
  msg: { bucket: string; ops: Record<string, unknown>[] },
  spot: Spot,
): Record<string, unknown> {
  const ops = msg.ops.length > 0 ? msg.ops.map((o) => ({ ...o })) : [];
  const op = { origin: 'rA', originSeq: 1, key: 'k', kind: 'set', value: null, hlc: encodeHlc(1, 0, 'rA') };
  if (ops.length === 0) ops.push(op);
  const first = ops[0] as Record<string, unknown>;
  if (spot === 'bucket') return { ...msg, ops, bucket: `b${MARK}` };
  if (spot === 'field name') return { ...msg, ops, [MARK]: 1 };
  if (spot === 'key') first.key = `k${MARK}`;
  if (spot === 'origin') first.origin = MARK;
  if (spot === 'value string') first.value = [1, { a: `v${MARK}` }];
  if (spot === 'value map key') first.value = { [MARK]: true };
  return { ...msg, ops };
}

function corrupt(frame: Uint8Array, bad: readonly number[]): Uint8Array {
  const out = new Uint8Array(frame);
  const at = Buffer.from(out).indexOf(MARK);
  if (at < 0) throw new Error('marker not in frame');
  out.set(bad, at);
  return out;
}

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
    return undefined;
  } catch (e) {
    return e instanceof MittsyncError ? e.code : String(e);
  }
}

describe('isUtf8', () => {
  it('agrees with a fatal TextDecoder on any bytes', () => {
    const strict = new TextDecoder('utf-8', { fatal: true });
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 16 }), (bytes) => {
        let ok = true;
        try {
          strict.decode(bytes);
        } catch {
          ok = false;
        }
        expect(isUtf8(bytes, 0, bytes.length)).toBe(ok);
      }),
      { numRuns: 5000 },
    );
  });
});

describe('checkFrameStrings', () => {
  it('lets any valid frame through and it decodes as msgpackr decodes it', () => {
    fc.assert(
      fc.property(arbPush, (msg) => {
        const frame = encodeFrame(msg);
        expect(() => checkFrameStrings(frame)).not.toThrow();
        expect(decodeFrame(frame)).toEqual(msg);
      }),
      { numRuns: 500 },
    );
  });

  it('refuses a frame with an invalid UTF-8 sequence in any string, with BAD_MESSAGE', () => {
    const spots: Spot[] = ['bucket', 'key', 'value string', 'value map key', 'field name', 'origin'];
    fc.assert(
      fc.property(arbPush, fc.constantFrom(...spots), fc.constantFrom(...INVALID), (msg, spot, bad) => {
        const good = msgpack.pack(marked(msg, spot));
        expect(() => decodeFrame(good)).not.toThrow();
        expect(codeOf(() => decodeFrame(corrupt(good, bad)))).toBe('BAD_MESSAGE');
      }),
      { numRuns: 500 },
    );
  });

  it('refuses the keys that used to collapse into one with U+FFFD', () => {
    const frame = (keyBytes: number[]) => {
      const f = msgpack.pack({ type: 'push', bucket: 'b', ops: [['rA', 1, 'kZQZQ', 0, 'x', 'h']] });
      return corrupt(f, keyBytes);
    };
    expect(codeOf(() => decodeFrame(frame([0x61, 0xff, 0x61, 0x61])))).toBe('BAD_MESSAGE');
    expect(codeOf(() => decodeFrame(frame([0xed, 0xa0, 0x80, 0x61])))).toBe('BAD_MESSAGE');
    // A real U+FFFD (EF BF BD) is a character like any other.
    const real = decodeFrame(frame([0x61, 0xef, 0xbf, 0xbd])) as { ops: { key: string }[] };
    expect(real.ops[0]?.key).toBe('ka\uFFFD');
  });

  it('accepts msgpackr undefined and refuses other extension types', () => {
    const withUndefined = msgpack.pack({ type: 'ping', id: 1, extra: undefined });
    expect(decodeFrame(withUndefined)).toEqual({ type: 'ping', id: 1, extra: undefined });
    const date = msgpack.pack({ type: 'ping', id: 1, at: new Date(0) });
    expect(codeOf(() => decodeFrame(date))).toBe('BAD_MESSAGE');
    // An Error extension (0x65) reads a string after its header: the walk would not see it.
    expect(codeOf(() => decodeFrame(new Uint8Array([0xd4, 0x65, 0x00, 0xa2, 0x61, 0xff])))).toBe(
      'BAD_MESSAGE',
    );
  });

  it('leaves truncated frames to msgpackr (BAD_FRAME)', () => {
    const f = msgpack.pack({ type: 'push', bucket: 'bucket', ops: [] });
    for (let n = 1; n < f.length; n++) expect(codeOf(() => decodeFrame(f.subarray(0, n)))).toBe('BAD_FRAME');
  });

  it('checks JSON frames too', () => {
    const bytes = new Uint8Array([...new TextEncoder().encode('{"type":"ping","id":"'), 0xff, 0x22, 0x7d]);
    expect(codeOf(() => decodeFrame(bytes, 'json'))).toBe('BAD_MESSAGE');
    expect(decodeFrame(new TextEncoder().encode('{"type":"ping","id":"\uFFFD"}'), 'json')).toEqual({
      type: 'ping',
      id: '\uFFFD',
    });
  });
});
