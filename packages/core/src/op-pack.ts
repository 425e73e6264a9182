import { MittsyncError } from './errors';
import { valueEnd } from './frame-strings';
import { isHlc, isReplicaId, MAX_COUNTER, MAX_WALL } from './hlc';
import type { Op, SeqOp, Value, Version } from './model';
import { isUtf8, textAt, utf8Length, writeUtf8 } from './utf8';
import { encodeValueView, msgpack } from './value-codec';

/**
 * Packed ops: the ops of a `deliver` or `push` frame as one MessagePack binary field, for
 * peers that negotiated it (`hello.packOps`, `welcome.packOps`). A live op's key and value are
 * its payload; in tuples everything else (a 16-character origin, an HLC of 32 characters, a
 * seq, the previous version's HLC) costs about 98 bytes per op. Packed, what a reader can
 * infer is left out: the HLC's node is the op's origin, origins and previous versions' nodes
 * are indexes into a dictionary at the head of the frame, seqs and each origin's originSeqs
 * usually count up by one (a flag says when not), wall times are deltas from the previous
 * op's (the previous version's from its op's), and the kind, which optional fields follow and
 * the previous version's state are bits of one byte.
 *
 * Layout (varint = unsigned LEB128; zigzag = a signed number as a varint, 0, -1, 1, -2...):
 * ```
 *   u8 layout (1), u8 frame flags (bit 0: ops carry seqs and prevs, as delivered)
 *   varint op count, varint dictionary size, then per entry: u8 length, ASCII replicaId
 *   per op:
 *     u8 flags: bit 0 del, 1 origin index follows (else the previous op's origin),
 *       2 originSeq delta follows (else the origin's previous originSeq + 1),
 *       3 seq delta follows (else the previous seq + 1), 4 HLC counter follows (else 0),
 *       5-6 prev: 0 not said, 1 absent (null), 2 live, 3 tombstone, 7 prev counter follows
 *     [varint origin index] [zigzag originSeq - expected] [varint seq - expected]
 *     zigzag wall - previous op's wall (the first: from 0), [varint counter]
 *     [prev: zigzag wall - prev wall, varint node index, [varint counter]]
 *     varint key length, key (UTF-8)
 *   then the values of the set ops, in order, back to back (each one MessagePack value)
 * ```
 * Encoding gives up (`undefined`: the caller sends tuples) on anything this cannot say
 * exactly: an HLC whose node is not the op's origin, a set op without a value, a key with no
 * UTF-8 form, seqs that do not ascend. Decoding checks the bytes as strictly as a frame's
 * (strings UTF-8, no extension types, HLC parts in range, indexes in the dictionary, nothing
 * left over) and throws `BAD_FRAME`, `BAD_MESSAGE` or `BAD_HLC`; the message is then validated
 * like any other.
 */

/** Layout version of packed ops, sent in `hello.packOps` and `welcome.packOps`. */
export const PACKED_OPS = 1;

const WITH_SEQS = 1;
const F_DEL = 1;
const F_ORIGIN = 2;
const F_ORIGIN_SEQ = 4;
const F_SEQ = 8;
const F_COUNTER = 16;
const PREV_SHIFT = 5;
const F_PREV_COUNTER = 128;
/** Largest originSeq or seq packed (deltas stay safe integers as zigzags). */
const MAX_COUNT = 2 ** 51;

/** A growable byte buffer. */
class Writer {
  buf: Uint8Array;
  pos = 0;
  constructor(size: number) {
    this.buf = new Uint8Array(size);
  }
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.pos + n));
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }
  byte(b: number): void {
    this.buf[this.pos++] = b;
  }
  varint(n: number): void {
    const buf = this.buf;
    while (n >= 0x80) {
      buf[this.pos++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    buf[this.pos++] = n;
  }
  zigzag(n: number): void {
    this.varint(n >= 0 ? 2 * n : -2 * n - 1);
  }
}

interface ParsedHlc {
  wall: number;
  counter: number;
  node: string;
}

function parseHlc(h: unknown): ParsedHlc | undefined {
  if (!isHlc(h)) return undefined;
  return {
    wall: Number.parseInt(h.slice(0, 12), 16),
    counter: Number.parseInt(h.slice(12, 16), 16),
    node: h.slice(16),
  };
}

const isCount = (n: unknown): n is number =>
  typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 && n <= MAX_COUNT;

/**
 * `ops` packed, with their seqs and prevs when `withSeqs` (a `deliver`); undefined when some
 * op cannot be packed exactly (see the layout above): send them as tuples then.
 */
export function packOps(ops: readonly (Op | SeqOp)[], withSeqs: boolean): Uint8Array | undefined {
  const dict = new Map<string, number>();
  const index = (id: string): number => {
    let i = dict.get(id);
    if (i === undefined) {
      i = dict.size;
      dict.set(id, i);
    }
    return i;
  };
  const hlcs: ParsedHlc[] = [];
  const prevs: (ParsedHlc | null | undefined)[] = [];
  let size = 16;
  let lastSeq = 0;
  for (const op of ops) {
    const h = parseHlc(op.hlc);
    if (h === undefined || h.node !== op.origin || !isCount(op.originSeq)) return undefined;
    if (typeof op.key !== 'string' || op.key.length === 0) return undefined;
    if (op.kind === 'set' ? op.value === undefined : op.kind !== 'del') return undefined;
    index(op.origin);
    hlcs.push(h);
    if (withSeqs) {
      const { seq, prev } = op as SeqOp;
      if (!isCount(seq) || seq <= lastSeq) return undefined;
      lastSeq = seq;
      if (prev === undefined || prev === null) prevs.push(prev);
      else {
        const p = parseHlc(prev.hlc);
        if (p === undefined || (prev.deleted !== undefined && prev.deleted !== true)) return undefined;
        index(p.node);
        prevs.push(p);
      }
    }
    size += 40 + 3 * op.key.length;
  }
  const w = new Writer(size + 65 * dict.size + 20);
  w.byte(PACKED_OPS);
  w.byte(withSeqs ? WITH_SEQS : 0);
  w.varint(ops.length);
  w.varint(dict.size);
  for (const id of dict.keys()) {
    w.byte(id.length);
    for (let i = 0; i < id.length; i++) w.byte(id.charCodeAt(i));
  }
  const lastOriginSeq = new Map<string, number>();
  const vals = new Writer(64 * ops.length + 16);
  let origin = '';
  let wall = 0;
  lastSeq = 0;
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i] as SeqOp;
    const h = hlcs[i] as ParsedHlc;
    const expectedOriginSeq = (lastOriginSeq.get(op.origin) ?? 0) + 1;
    lastOriginSeq.set(op.origin, op.originSeq);
    const prev = withSeqs ? prevs[i] : undefined;
    let flags = op.kind === 'del' ? F_DEL : 0;
    if (op.origin !== origin) flags |= F_ORIGIN;
    if (op.originSeq !== expectedOriginSeq) flags |= F_ORIGIN_SEQ;
    if (withSeqs && op.seq !== lastSeq + 1) flags |= F_SEQ;
    if (h.counter !== 0) flags |= F_COUNTER;
    if (prev !== undefined) {
      const state = prev === null ? 1 : op.prev?.deleted ? 3 : 2;
      flags |= state << PREV_SHIFT;
      if (prev !== null && prev.counter !== 0) flags |= F_PREV_COUNTER;
    }
    const keyBytes = utf8Length(op.key);
    w.ensure(48 + keyBytes);
    w.byte(flags);
    if (flags & F_ORIGIN) {
      w.varint(dict.get(op.origin) as number);
      origin = op.origin;
    }
    if (flags & F_ORIGIN_SEQ) w.zigzag(op.originSeq - expectedOriginSeq);
    if (flags & F_SEQ) w.varint(op.seq - lastSeq - 1);
    lastSeq = op.seq;
    w.zigzag(h.wall - wall);
    wall = h.wall;
    if (flags & F_COUNTER) w.varint(h.counter);
    if (prev !== undefined && prev !== null) {
      w.zigzag(h.wall - prev.wall);
      w.varint(dict.get(prev.node) as number);
      if (flags & F_PREV_COUNTER) w.varint(prev.counter);
    }
    w.varint(keyBytes);
    if (writeUtf8(w.buf, w.pos, op.key) < 0) return undefined; // no UTF-8 form
    w.pos += keyBytes;
    if (op.kind !== 'del') {
      const value = encodeValueView(op.value as Value);
      vals.ensure(value.length);
      vals.buf.set(value, vals.pos);
      vals.pos += value.length;
    }
  }
  // The values, back to back after every op's head: one decoder call reads them all.
  w.ensure(vals.pos);
  w.buf.set(vals.buf.subarray(0, vals.pos), w.pos);
  w.pos += vals.pos;
  return w.buf.slice(0, w.pos);
}

function malformed(message: string): never {
  throw new MittsyncError('BAD_FRAME', `packed ops: ${message}`);
}

/** A reader over packed ops; every read checks the bounds. */
class Reader {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}
  byte(): number {
    if (this.pos >= this.buf.length) malformed('truncated');
    return this.buf[this.pos++] as number;
  }
  varint(): number {
    let n = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.byte();
      n += (b & 0x7f) * mul;
      if (b < 0x80) {
        if (n > Number.MAX_SAFE_INTEGER) malformed('number out of range');
        return n;
      }
      mul *= 0x80;
    }
    return malformed('varint too long');
  }
  zigzag(): number {
    const z = this.varint();
    return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
  }
}

/** Two hex digits of each byte value: HLC strings are built from these (decoding's hot spot). */
const HEX2 = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'));
const hex6 = (n: number) => (HEX2[n >>> 16] as string) + HEX2[(n >>> 8) & 0xff] + HEX2[n & 0xff];
/** The upper 24 bits of the last wall time made hex: nearby ops share them (4.6 hours). */
let lastHigh = -1;
let lastHighHex = '';

function hlcOf(wall: number, counter: number, node: string): string {
  if (!Number.isSafeInteger(wall) || wall < 0 || wall > MAX_WALL)
    throw new MittsyncError('BAD_HLC', `packed ops: HLC wall time ${wall} is not an integer in [0, 2^48)`);
  if (counter > MAX_COUNTER)
    throw new MittsyncError('BAD_HLC', `packed ops: HLC counter ${counter} is over ${MAX_COUNTER}`);
  const high = Math.floor(wall / 0x1000000);
  if (high !== lastHigh) {
    lastHigh = high;
    lastHighHex = hex6(high);
  }
  return lastHighHex + hex6(wall - high * 0x1000000) + HEX2[counter >>> 8] + HEX2[counter & 0xff] + node;
}

/**
 * The ops `bytes` pack, as op objects (with `seq` and `prev` when `withSeqs`, as a `deliver`
 * carries them) for the message's validation to check. Throws `BAD_FRAME` on bytes that are
 * not packed ops of that kind, `BAD_MESSAGE` on a string that is not well-formed UTF-8 or a
 * replicaId, `BAD_HLC` on an HLC part out of range.
 */
export function unpackOps(bytes: Uint8Array, withSeqs: boolean): Op[] | SeqOp[] {
  const r = new Reader(bytes);
  if (r.byte() !== PACKED_OPS) malformed('unknown layout');
  const frameFlags = r.byte();
  if (frameFlags !== (withSeqs ? WITH_SEQS : 0))
    malformed(withSeqs ? 'delivered ops need seqs' : 'pushed ops carry no seqs');
  const count = r.varint();
  // Every op takes at least 3 bytes: a count past that is a lie, refused before allocating.
  if (count > bytes.length) malformed('op count larger than the frame');
  const dictSize = r.varint();
  if (dictSize > bytes.length) malformed('dictionary larger than the frame');
  const dict: string[] = [];
  for (let i = 0; i < dictSize; i++) {
    const len = r.byte();
    const end = r.pos + len;
    if (end > bytes.length) malformed('truncated');
    const id = textAt(bytes, r.pos, end);
    if (!isReplicaId(id)) throw new MittsyncError('BAD_MESSAGE', 'packed ops: a replicaId is malformed');
    dict.push(id);
    r.pos = end;
  }
  const entry = (i: number): string => {
    const id = dict[i];
    if (id === undefined) malformed(`replica index ${i} is not in the dictionary`);
    return id;
  };
  const lastOriginSeq: number[] = dict.map(() => 0);
  const ops: SeqOp[] = [];
  const sets: SeqOp[] = [];
  let at = -1; // the current origin's dictionary index
  let wall = 0;
  let seq = 0;
  for (let i = 0; i < count; i++) {
    const flags = r.byte();
    const prevState = (flags >> PREV_SHIFT) & 3;
    if (!withSeqs && (flags & F_SEQ || prevState !== 0)) malformed('pushed ops carry no seqs');
    if (flags & F_PREV_COUNTER && prevState < 2) malformed('a prev counter without a prev');
    if (flags & F_ORIGIN) {
      at = r.varint();
      if (at >= dictSize) malformed(`replica index ${at} is not in the dictionary`);
    }
    if (at < 0) malformed('the first op names no origin');
    const origin = dict[at] as string;
    let originSeq = (lastOriginSeq[at] as number) + 1;
    if (flags & F_ORIGIN_SEQ) originSeq += r.zigzag();
    if (!Number.isSafeInteger(originSeq) || originSeq < 0) malformed('originSeq out of range');
    lastOriginSeq[at] = originSeq;
    seq += 1;
    if (flags & F_SEQ) seq += r.varint();
    if (!Number.isSafeInteger(seq)) malformed('seq out of range');
    wall += r.zigzag();
    const hlc = hlcOf(wall, flags & F_COUNTER ? r.varint() : 0, origin);
    let prev: Version | null | undefined;
    if (prevState === 1) prev = null;
    else if (prevState >= 2) {
      const pWall = wall - r.zigzag();
      const node = entry(r.varint());
      const pHlc = hlcOf(pWall, flags & F_PREV_COUNTER ? r.varint() : 0, node);
      prev = prevState === 3 ? { hlc: pHlc, deleted: true } : { hlc: pHlc };
    }
    const keyLen = r.varint();
    const keyEnd = r.pos + keyLen;
    if (keyEnd > bytes.length) malformed('truncated key');
    if (keyLen === 0) throw new MittsyncError('BAD_MESSAGE', 'packed ops: key must be a non-empty string');
    if (!isUtf8(bytes, r.pos, keyEnd))
      throw new MittsyncError('BAD_MESSAGE', `packed ops: the key at byte ${r.pos} is not well-formed UTF-8`);
    const key = textAt(bytes, r.pos, keyEnd);
    r.pos = keyEnd;
    // One shape per kind of frame, as the tuples decode to; values are filled in below.
    const op: SeqOp =
      flags & F_DEL
        ? ({ origin, originSeq, key, kind: 'del', hlc } as SeqOp)
        : ({ origin, originSeq, key, kind: 'set', hlc, value: null } as SeqOp);
    if (!(flags & F_DEL)) sets.push(op);
    if (withSeqs) {
      op.seq = seq;
      if (prev !== undefined) op.prev = prev;
    }
    ops.push(op);
  }
  // The values of the set ops, back to back: each exactly one MessagePack value (its strings
  // well-formed UTF-8, no extension types), nothing left over, then decoded in one call.
  let pos = r.pos;
  for (let i = 0; i < sets.length; i++) {
    const end = valueEnd(bytes, pos, bytes.length);
    if (end < 0) malformed(`value ${i} is truncated or malformed`);
    pos = end;
  }
  if (pos !== bytes.length) malformed('bytes left over after the last value');
  if (sets.length > 0) {
    let values: unknown[];
    try {
      values = msgpack.unpackMultiple(bytes.subarray(r.pos)) as unknown[];
    } catch (cause) {
      throw new MittsyncError('BAD_FRAME', 'packed ops: values could not be decoded', { cause });
    }
    if (values.length !== sets.length) malformed('values do not match the set ops');
    for (let i = 0; i < sets.length; i++) (sets[i] as SeqOp).value = values[i] as Value;
  }
  return ops;
}
