import { type Checksum, checksumAdd, checksumAddBytes } from './checksum';
import { MittsyncError } from './errors';
import type { Hlc } from './hlc';
import type { Entry } from './model';
import { firstBadValue, packedEntry, packedValueOf } from './packed';
import { textAt, utf8Length, writeUtf8 } from './utf8';
import { encodeValueView } from './value-codec';

/**
 * A run of entries, sorted by key and unique, stored by column: what a catch-up page carries
 * when the replica asks for columns (`pageReq.cols`), and what a store that keeps entries by
 * column (the browser peer's key-range pages) cuts into records as it is. Keys and versions
 * are bytes (UTF-8) with the end of each one, like the values, so a bulk download makes no
 * string or object per entry, and cutting or joining runs copies typed arrays only (copying
 * strings costs several times more per byte, in V8 and in IndexedDB's structured clone). Only
 * the few entries that need a decision of their own (the mitt holds a newer live op for the
 * key, say) are read as strings.
 */
export interface EntryColumns {
  /** The keys as UTF-8, back to back. */
  readonly keyBytes: Uint8Array;
  /** End of each key in `keyBytes` (entry `i`'s key starts where entry `i - 1`'s ends). */
  readonly keyEnds: Uint32Array;
  /** The versions (HLCs, ASCII), back to back. */
  readonly hlcBytes: Uint8Array;
  /** End of each version in `hlcBytes`. */
  readonly hlcEnds: Uint32Array;
  /** Relay sequence numbers. */
  readonly seqs: Float64Array;
  /** Values as MessagePack, back to back; a tombstone has no bytes. */
  readonly vals: Uint8Array;
  /** End of each entry's value in `vals`. */
  readonly valEnds: Uint32Array;
}

const NO_BYTES = new Uint8Array(0);
const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/**
 * An entry's value as MessagePack (its own bytes when it came packed); none for a tombstone.
 * A view, not a copy (of the frame or page a packed entry came from, or of msgpackr's buffer,
 * see `encodeValueView`): every caller copies it into the record or page it builds, at once.
 */
export function valueBytesOf(e: Entry): Uint8Array {
  if (e.deleted) return NO_BYTES;
  return packedValueOf(e) ?? encodeValueView(e.value ?? null);
}

/** Where piece `i` starts, given the ends of all pieces. */
export const startIn = (ends: Uint32Array, i: number): number => (i === 0 ? 0 : (ends[i - 1] as number));

/** How many entries `c` holds. */
export const columnSize = (c: EntryColumns): number => c.keyEnds.length;

/** Key `i` of `c`. */
export const keyAt = (c: EntryColumns, i: number): string =>
  textAt(c.keyBytes, startIn(c.keyEnds, i), c.keyEnds[i] as number);

/** Version `i` of `c`. */
export const hlcAt = (c: EntryColumns, i: number): Hlc =>
  textAt(c.hlcBytes, startIn(c.hlcEnds, i), c.hlcEnds[i] as number);

/** Whether entry `i` of `c` is a tombstone. */
export const isTombstoneIn = (c: EntryColumns, i: number): boolean => startIn(c.valEnds, i) === c.valEnds[i];

/** Adds live entry `i` of `c` to `sum` (as `checksumAdd` would, without making strings). */
export function checksumAddIn(sum: Checksum, c: EntryColumns, i: number): void {
  const k0 = startIn(c.keyEnds, i);
  const k1 = c.keyEnds[i] as number;
  for (let x = k0; x < k1; x++) {
    if ((c.keyBytes[x] as number) >= 0x80) {
      // Not ASCII: UTF-16 units are what the checksum hashes.
      checksumAdd(sum, keyAt(c, i), hlcAt(c, i));
      return;
    }
  }
  checksumAddBytes(sum, c.keyBytes, k0, k1, c.hlcBytes, startIn(c.hlcEnds, i), c.hlcEnds[i] as number);
}

/** Entry `i` of `c`; a live entry's value is decoded when read (and only then). */
export function columnEntry(c: EntryColumns, i: number): Entry {
  const start = startIn(c.valEnds, i);
  const end = c.valEnds[i] as number;
  const key = keyAt(c, i);
  const hlc = hlcAt(c, i);
  const seq = c.seqs[i] as number;
  return start === end
    ? { key, hlc, seq, deleted: true }
    : packedEntry(key, hlc, seq, c.vals.subarray(start, end));
}

/** The entries of a range of a run, in order. */
export function rangeEntries({ c, from, to }: ColumnRange): Entry[] {
  const out: Entry[] = new Array(to - from);
  for (let i = from; i < to; i++) out[i - from] = columnEntry(c, i);
  return out;
}

/** All entries of `c`, in order. */
export const columnEntries = (c: EntryColumns): Entry[] => rangeEntries({ c, from: 0, to: columnSize(c) });

/** How many entries `ranges` hold. */
export const rangesSize = (ranges: readonly ColumnRange[]): number =>
  ranges.reduce((n, r) => n + r.to - r.from, 0);

/** The packed buffer behind columns made by {@link columnsOf} (what {@link encodeColumns} sends). */
const packedOf = new WeakMap<EntryColumns, Uint8Array>();

/**
 * `entries` (sorted by key, unique) by column, written in one pass into one buffer of the
 * packed layout (the relay sends that buffer as it is). Throws `BAD_MESSAGE` for a key that is
 * not well-formed Unicode: it has no UTF-8 form (the relay then sends the page as entries).
 */
export function columnsOf(entries: readonly Entry[]): EntryColumns {
  const n = entries.length;
  const bytes = entries.map(valueBytesOf);
  let keyLen = 0;
  let hlcLen = 0;
  let valLen = 0;
  for (let i = 0; i < n; i++) {
    const e = entries[i] as Entry;
    keyLen += utf8Length(e.key);
    hlcLen += e.hlc.length;
    valLen += (bytes[i] as Uint8Array).length;
  }
  const buf = packedBuffer(n, keyLen, hlcLen, valLen);
  const out = viewsOf(buf, n, keyLen, hlcLen, valLen);
  const { keyBytes, hlcBytes, vals, seqs, keyEnds, hlcEnds, valEnds } = out;
  let kb = 0;
  let hb = 0;
  let vb = 0;
  for (let i = 0; i < n; i++) {
    const e = entries[i] as Entry;
    const v = bytes[i] as Uint8Array;
    seqs[i] = e.seq;
    kb = writeUtf8(keyBytes, kb, e.key);
    if (kb < 0) throw new MittsyncError('BAD_MESSAGE', 'a key with a lone surrogate has no UTF-8 form');
    keyEnds[i] = kb;
    hb = writeUtf8(hlcBytes, hb, e.hlc);
    hlcEnds[i] = hb;
    vals.set(v, vb);
    vb += v.length;
    valEnds[i] = vb;
  }
  packedOf.set(out, buf);
  return out;
}

/** `runs` (in key order, none overlapping) as one run in one buffer of the packed layout. */
export function joinRuns(runs: readonly ColumnRange[]): EntryColumns {
  let n = 0;
  let keyLen = 0;
  let hlcLen = 0;
  let valLen = 0;
  for (const { c, from, to } of runs) {
    n += to - from;
    keyLen += startIn(c.keyEnds, to) - startIn(c.keyEnds, from);
    hlcLen += startIn(c.hlcEnds, to) - startIn(c.hlcEnds, from);
    valLen += startIn(c.valEnds, to) - startIn(c.valEnds, from);
  }
  const buf = packedBuffer(n, keyLen, hlcLen, valLen);
  const out = viewsOf(buf, n, keyLen, hlcLen, valLen);
  let at = 0;
  let kb = 0;
  let hb = 0;
  let vb = 0;
  for (const { c, from, to } of runs) {
    const k0 = startIn(c.keyEnds, from);
    const h0 = startIn(c.hlcEnds, from);
    const v0 = startIn(c.valEnds, from);
    out.seqs.set(c.seqs.subarray(from, to), at);
    for (let i = from; i < to; i++) {
      out.keyEnds[at] = kb + (c.keyEnds[i] as number) - k0;
      out.hlcEnds[at] = hb + (c.hlcEnds[i] as number) - h0;
      out.valEnds[at] = vb + (c.valEnds[i] as number) - v0;
      at++;
    }
    const k1 = startIn(c.keyEnds, to);
    const h1 = startIn(c.hlcEnds, to);
    const v1 = startIn(c.valEnds, to);
    out.keyBytes.set(c.keyBytes.subarray(k0, k1), kb);
    out.hlcBytes.set(c.hlcBytes.subarray(h0, h1), hb);
    out.vals.set(c.vals.subarray(v0, v1), vb);
    kb += k1 - k0;
    hb += h1 - h0;
    vb += v1 - v0;
  }
  packedOf.set(out, buf);
  return out;
}

/**
 * A page's columns as a store reads them in bulk: each column's bytes back to back and each
 * entry's end in them (entry `i` starts where entry `i - 1` ends; a tombstone has no value
 * bytes). Keys are UTF-8 and the versions ASCII, as in {@link EntryColumns}.
 */
export interface ColumnParts {
  keyBytes: Uint8Array;
  keyEnds: ArrayLike<number>;
  hlcBytes: Uint8Array;
  hlcEnds: ArrayLike<number>;
  vals: Uint8Array;
  valEnds: ArrayLike<number>;
  seqs: ArrayLike<number>;
}

/**
 * The first `n` entries of `p` in the packed layout, in one buffer (what {@link encodeColumns}
 * then sends as it is): a page built without an object per entry.
 */
export function packColumns(p: ColumnParts, n: number): EntryColumns {
  const keyLen = n === 0 ? 0 : (p.keyEnds[n - 1] as number);
  const hlcLen = n === 0 ? 0 : (p.hlcEnds[n - 1] as number);
  const valLen = n === 0 ? 0 : (p.valEnds[n - 1] as number);
  const buf = packedBuffer(n, keyLen, hlcLen, valLen);
  const out = viewsOf(buf, n, keyLen, hlcLen, valLen);
  for (let i = 0; i < n; i++) {
    out.seqs[i] = p.seqs[i] as number;
    out.keyEnds[i] = p.keyEnds[i] as number;
    out.hlcEnds[i] = p.hlcEnds[i] as number;
    out.valEnds[i] = p.valEnds[i] as number;
  }
  out.keyBytes.set(p.keyBytes.subarray(0, keyLen));
  out.hlcBytes.set(p.hlcBytes.subarray(0, hlcLen));
  out.vals.set(p.vals.subarray(0, valLen));
  packedOf.set(out, buf);
  return out;
}

/** Whether the keys of `p`'s first `n` entries ascend strictly, byte by byte. */
export function keysAscend(p: Pick<ColumnParts, 'keyBytes' | 'keyEnds'>, n: number): boolean {
  for (let i = 1; i < n; i++) {
    const a0 = i === 1 ? 0 : (p.keyEnds[i - 2] as number);
    if (
      compareAt(
        p.keyBytes,
        a0,
        p.keyEnds[i - 1] as number,
        p.keyEnds[i - 1] as number,
        p.keyEnds[i] as number,
      ) >= 0
    )
      return false;
  }
  return true;
}

/** Entries `from..to-1` of a run. */
export interface ColumnRange {
  c: EntryColumns;
  from: number;
  to: number;
}

/**
 * Index of the first key of `c[from, to)` that is `>= key` (`to` when none is). The same loop
 * as `lowerBound` in `search.ts`, which searches arrays: a run's keys are read through
 * `keyAt`, and a callback there would make every array search slower (see `search.ts`).
 */
export function lowerBoundIn(c: EntryColumns, key: string, from = 0, to = columnSize(c)): number {
  let lo = from;
  let hi = to;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keyAt(c, mid) < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Index of `key` in `c`, or -1. */
export function indexIn(c: EntryColumns, key: string): number {
  const i = lowerBoundIn(c, key);
  return i < columnSize(c) && keyAt(c, i) === key ? i : -1;
}

/**
 * Compares `b[a0, a1)` with `b[b0, b1)` byte by byte: negative, 0 or positive. For ASCII this
 * is how the strings compare; keys with other characters are compared as strings instead
 * (UTF-8 order and UTF-16 order differ above U+FFFF).
 */
function compareAt(b: Uint8Array, a0: number, a1: number, b0: number, b1: number): number {
  const n = Math.min(a1 - a0, b1 - b0);
  for (let i = 0; i < n; i++) {
    const x = b[a0 + i] as number;
    const y = b[b0 + i] as number;
    if (x !== y) {
      if (x >= 0x80 || y >= 0x80) {
        const s = textAt(b, a0, a1);
        const t = textAt(b, b0, b1);
        return s < t ? -1 : s > t ? 1 : 0;
      }
      return x - y;
    }
  }
  return a1 - a0 - (b1 - b0);
}

/** The greatest version in `c` ('' when it is empty). */
export function maxHlcIn(c: EntryColumns): Hlc {
  const ends = c.hlcEnds;
  let best = -1;
  for (let i = 0; i < ends.length; i++) {
    if (
      best < 0 ||
      compareAt(c.hlcBytes, startIn(ends, i), ends[i] as number, startIn(ends, best), ends[best] as number) >
        0
    )
      best = i;
  }
  return best < 0 ? '' : hlcAt(c, best);
}

/*
 * The packed layout of {@link encodeColumns} (a column page on the wire), all numbers
 * little-endian:
 *   u8 layout version (1), 3 bytes zero, u32 n, u32 key bytes, u32 version bytes,
 *   u32 value bytes, 4 bytes zero                        (24 bytes: what follows is aligned)
 *   f64 x n seqs, u32 x n key ends, u32 x n version ends, u32 x n value ends
 *   the keys (UTF-8), the versions (ASCII), the values (MessagePack), each back to back
 * The columns are views into the buffer, which takes a little-endian machine (all of today's
 * browsers and servers are): on another, packing and reading columns throws.
 */
const LAYOUT_VERSION = 1;
const HEADER = 24;
const PER_ENTRY = 8 + 4 + 4 + 4;
/** Whether this machine can read column pages (they are views of little-endian numbers). */
export const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const packedSize = (n: number, keyLen: number, hlcLen: number, valLen: number): number =>
  HEADER + n * PER_ENTRY + keyLen + hlcLen + valLen;

/** Where each column of a packed buffer of these sizes starts. */
function offsets(n: number, keyLen: number, hlcLen: number) {
  const seqs = HEADER;
  const keyEnds = seqs + n * 8;
  const hlcEnds = keyEnds + n * 4;
  const valEnds = hlcEnds + n * 4;
  const keyBytes = valEnds + n * 4;
  const hlcBytes = keyBytes + keyLen;
  const vals = hlcBytes + hlcLen;
  return { seqs, keyEnds, hlcEnds, valEnds, keyBytes, hlcBytes, vals };
}

/** A zeroed buffer of the packed layout for these sizes, its header written. */
function packedBuffer(n: number, keyLen: number, hlcLen: number, valLen: number): Uint8Array {
  const buf = new Uint8Array(packedSize(n, keyLen, hlcLen, valLen));
  const dv = new DataView(buf.buffer);
  buf[0] = LAYOUT_VERSION;
  dv.setUint32(4, n, true);
  dv.setUint32(8, keyLen, true);
  dv.setUint32(12, hlcLen, true);
  dv.setUint32(16, valLen, true);
  return buf;
}

function viewsOf(buf: Uint8Array, n: number, keyLen: number, hlcLen: number, valLen: number): EntryColumns {
  if (!littleEndian) throw new MittsyncError('INTERNAL', 'column pages need a little-endian machine');
  const o = offsets(n, keyLen, hlcLen);
  const at = buf.byteOffset;
  return {
    seqs: new Float64Array(buf.buffer, at + o.seqs, n),
    keyEnds: new Uint32Array(buf.buffer, at + o.keyEnds, n),
    hlcEnds: new Uint32Array(buf.buffer, at + o.hlcEnds, n),
    valEnds: new Uint32Array(buf.buffer, at + o.valEnds, n),
    keyBytes: buf.subarray(o.keyBytes, o.keyBytes + keyLen),
    hlcBytes: buf.subarray(o.hlcBytes, o.hlcBytes + hlcLen),
    vals: buf.subarray(o.vals, o.vals + valLen),
  };
}

/** `c` packed into one buffer (see the layout above); made by {@link columnsOf}, its own. */
export function encodeColumns(c: EntryColumns): Uint8Array {
  const own = packedOf.get(c);
  if (own !== undefined) return own;
  const n = columnSize(c);
  const keyLen = c.keyBytes.length;
  const hlcLen = c.hlcBytes.length;
  const valLen = c.vals.length;
  const buf = packedBuffer(n, keyLen, hlcLen, valLen);
  const out = viewsOf(buf, n, keyLen, hlcLen, valLen);
  out.seqs.set(c.seqs);
  out.keyEnds.set(c.keyEnds);
  out.hlcEnds.set(c.hlcEnds);
  out.valEnds.set(c.valEnds);
  out.keyBytes.set(c.keyBytes);
  out.hlcBytes.set(c.hlcBytes);
  out.vals.set(c.vals);
  return buf;
}

function malformed(why: string): never {
  throw new MittsyncError('BAD_FRAME', `malformed column page: ${why}`);
}

/**
 * The columns of a packed buffer, as views into it (the numbers copied out when `bytes` is not
 * 8-aligned). Checks only that the sizes fit.
 */
function unpackColumns(bytes: Uint8Array): EntryColumns {
  if (bytes.length < HEADER || bytes[0] !== LAYOUT_VERSION) malformed('unknown layout');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = dv.getUint32(4, true);
  const keyLen = dv.getUint32(8, true);
  const hlcLen = dv.getUint32(12, true);
  const valLen = dv.getUint32(16, true);
  if (n > bytes.length || packedSize(n, keyLen, hlcLen, valLen) !== bytes.length)
    malformed('sizes do not match');
  if (bytes.byteOffset % 8 === 0) return viewsOf(bytes, n, keyLen, hlcLen, valLen);
  // Not aligned (a field of a frame): copy the numbers only; the bytes stay views.
  if (!littleEndian) throw new MittsyncError('INTERNAL', 'column pages need a little-endian machine');
  const o = offsets(n, keyLen, hlcLen);
  // A copy even when `bytes` is a Node Buffer (whose own `slice` is a view).
  const nums = Uint8Array.prototype.slice.call(bytes, o.seqs, o.keyBytes).buffer;
  return {
    seqs: new Float64Array(nums, 0, n),
    keyEnds: new Uint32Array(nums, n * 8, n),
    hlcEnds: new Uint32Array(nums, n * 12, n),
    valEnds: new Uint32Array(nums, n * 16, n),
    keyBytes: bytes.subarray(o.keyBytes, o.keyBytes + keyLen),
    hlcBytes: bytes.subarray(o.hlcBytes, o.hlcBytes + hlcLen),
    vals: bytes.subarray(o.vals, o.vals + valLen),
  };
}

/** Checks that `ends` never go down and end at `total`. */
function checkEnds(ends: Uint32Array, total: number, what: string): void {
  let prev = 0;
  for (let i = 0; i < ends.length; i++) {
    const e = ends[i] as number;
    if (e < prev) malformed(`${what} ends go down at ${i}`);
    prev = e;
  }
  if (prev !== total) malformed(`${what} ends do not add up`);
}

const isHex = (c: number): boolean => (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66);
const isIdChar = (c: number): boolean =>
  (c >= 0x30 && c <= 0x39) ||
  (c >= 0x41 && c <= 0x5a) ||
  (c >= 0x61 && c <= 0x7a) ||
  c === 0x5f ||
  c === 0x2d;

/** Whether `b[start, end)` is a well-formed HLC (as `isHlc` says). */
function isHlcAt(b: Uint8Array, start: number, end: number): boolean {
  const len = end - start;
  if (len < 17 || len > 80) return false;
  for (let i = start; i < start + 16; i++) if (!isHex(b[i] as number)) return false;
  for (let i = start + 16; i < end; i++) if (!isIdChar(b[i] as number)) return false;
  return true;
}

/** Whether every key of `keyBytes` (cut at `ends`) is well-formed UTF-8 on its own. */
function keysAreUtf8(keyBytes: Uint8Array, ends: Uint32Array): boolean {
  let ascii = true;
  for (let i = 0; i < keyBytes.length && ascii; i++) ascii = (keyBytes[i] as number) < 0x80;
  if (ascii) return true;
  try {
    for (let i = 0; i < ends.length; i++)
      utf8Strict.decode(keyBytes.subarray(startIn(ends, i), ends[i] as number));
    return true;
  } catch {
    return false;
  }
}

/**
 * Reads what {@link encodeColumns} wrote, checking everything a store relies on: keys
 * non-empty, UTF-8 and strictly ascending; versions well-formed; seqs non-negative integers;
 * each value exactly one MessagePack value. Throws `BAD_FRAME` otherwise. The columns are
 * views into `bytes` where it is aligned.
 */
export function decodeColumns(bytes: Uint8Array): EntryColumns {
  const c = unpackColumns(bytes);
  const { keyBytes, keyEnds, hlcBytes, hlcEnds, seqs, vals, valEnds } = c;
  checkEnds(keyEnds, keyBytes.length, 'key');
  checkEnds(hlcEnds, hlcBytes.length, 'version');
  checkEnds(valEnds, vals.length, 'value');
  if (!keysAreUtf8(keyBytes, keyEnds)) malformed('keys are not UTF-8');
  const n = keyEnds.length;
  for (let i = 0; i < n; i++) {
    const k0 = startIn(keyEnds, i);
    const k1 = keyEnds[i] as number;
    if (k1 === k0) malformed(`empty key at ${i}`);
    if (i > 0 && compareAt(keyBytes, k0, k1, startIn(keyEnds, i - 1), k0) <= 0)
      malformed(`keys not ascending at ${i}`);
    if (!isHlcAt(hlcBytes, startIn(hlcEnds, i), hlcEnds[i] as number)) malformed(`bad version at ${i}`);
    const seq = seqs[i] as number;
    if (!Number.isSafeInteger(seq) || seq < 0) malformed(`bad seq at ${i}`);
  }
  const bad = firstBadValue(vals, valEnds);
  if (bad >= 0) malformed(`bad value at ${bad}`);
  return c;
}
