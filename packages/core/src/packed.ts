import type { Entry, Value } from './model';
import { textAt } from './utf8';
import { decodeValue, msgpack } from './value-codec';

/**
 * Values a store already keeps as MessagePack (the relay's SQLite does) travel into page
 * frames byte for byte: a {@link packedEntry} holds the bytes and decodes them only if
 * something reads `value`, and the codec copies them into the frame instead of decoding and
 * re-encoding each value. The frame is the same MessagePack a plain entry would give (values
 * and frames share one configuration, `msgpack`), so nothing changes for the receiver.
 */

class PackedEntry {
  readonly #bytes: Uint8Array;
  #decoded: { value: Value } | undefined;

  constructor(
    readonly key: string,
    readonly hlc: string,
    readonly seq: number,
    bytes: Uint8Array,
  ) {
    this.#bytes = bytes;
  }

  get value(): Value {
    // Boxed, so a decoded `null` is remembered too.
    this.#decoded ??= { value: decodeValue(this.#bytes) };
    return this.#decoded.value;
  }

  /** Plain JSON, value included (the getter alone would be left out). */
  toJSON(): Entry {
    return { key: this.key, hlc: this.hlc, seq: this.seq, value: this.value };
  }

  static bytesOf(e: object): Uint8Array | undefined {
    return #bytes in e ? (e as PackedEntry).#bytes : undefined;
  }
}

/** A live entry whose value is given as its MessagePack encoding (decoded on first read). */
export function packedEntry(key: string, hlc: string, seq: number, bytes: Uint8Array): Entry {
  return new PackedEntry(key, hlc, seq, bytes);
}

/** The value's MessagePack bytes if `e` came from {@link packedEntry}. */
export function packedValueOf(e: Entry): Uint8Array | undefined {
  return PackedEntry.bytesOf(e);
}

/** `e` as a plain object (a packed entry's value decoded), for stores that keep what they get. */
export function plainEntry(e: Entry): Entry {
  return PackedEntry.bytesOf(e) === undefined ? e : { key: e.key, hlc: e.hlc, seq: e.seq, value: e.value };
}

/** A growable byte buffer with the few MessagePack writers a page frame needs. */
class Writer {
  buf = new Uint8Array(64 * 1024);
  view = new DataView(this.buf.buffer);
  pos = 0;
  private readonly utf8 = new TextEncoder();

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  byte(b: number): void {
    this.room(1);
    this.buf[this.pos++] = b;
  }

  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** A non-negative safe integer. */
  uint(n: number): void {
    this.room(9);
    if (n < 0x80) this.buf[this.pos++] = n;
    else if (n < 0x100) {
      this.buf[this.pos++] = 0xcc;
      this.buf[this.pos++] = n;
    } else if (n < 0x10000) {
      this.buf[this.pos++] = 0xcd;
      this.view.setUint16(this.pos, n);
      this.pos += 2;
    } else if (n < 0x100000000) {
      this.buf[this.pos++] = 0xce;
      this.view.setUint32(this.pos, n);
      this.pos += 4;
    } else {
      // As msgpackr does: a uint64 would decode as a BigInt, a float64 holds any safe integer.
      this.buf[this.pos++] = 0xcb;
      this.view.setFloat64(this.pos, n);
      this.pos += 8;
    }
  }

  str(s: string): void {
    // Worst case 3 bytes per UTF-16 unit, plus a 5-byte header.
    this.room(s.length * 3 + 5);
    const start = this.pos;
    const headerLen = s.length < 32 ? 1 : s.length < 0x100 ? 2 : s.length < 0x10000 ? 3 : 5;
    const { written } = this.utf8.encodeInto(s, this.buf.subarray(start + headerLen));
    // The header size was guessed from the UTF-16 length; move the bytes if UTF-8 needs more.
    const need = written < 32 ? 1 : written < 0x100 ? 2 : written < 0x10000 ? 3 : 5;
    if (need !== headerLen) this.buf.copyWithin(start + need, start + headerLen, start + headerLen + written);
    if (need === 1) this.buf[start] = 0xa0 | written;
    else if (need === 2) {
      this.buf[start] = 0xd9;
      this.buf[start + 1] = written;
    } else if (need === 3) {
      this.buf[start] = 0xda;
      this.view.setUint16(start + 1, written);
    } else {
      this.buf[start] = 0xdb;
      this.view.setUint32(start + 1, written);
    }
    this.pos = start + need + written;
  }

  arrayHeader(n: number): void {
    this.room(5);
    if (n < 16) this.buf[this.pos++] = 0x90 | n;
    else if (n < 0x10000) {
      this.buf[this.pos++] = 0xdc;
      this.view.setUint16(this.pos, n);
      this.pos += 2;
    } else {
      this.buf[this.pos++] = 0xdd;
      this.view.setUint32(this.pos, n);
      this.pos += 4;
    }
  }

  mapHeader(n: number): void {
    this.byte(0x80 | n); // page frames have fewer than 16 fields
  }

  /** Anything else, through msgpackr. */
  any(v: unknown): void {
    // A view into msgpackr's buffer, copied into this one at once.
    this.bytes(msgpack.pack(v));
  }

  done(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }
}

/**
 * Encodes a page message whose entries are already tuples (`compact`'s output) as MessagePack,
 * writing packed values byte for byte. `entries` are the original entries, in the same order.
 */
export function encodePageFrame(wire: Record<string, unknown>, entries: readonly Entry[]): Uint8Array {
  const w = new Writer();
  const fields = Object.keys(wire).filter((k) => wire[k] !== undefined);
  w.mapHeader(fields.length);
  for (const f of fields) {
    w.str(f);
    if (f !== 'entries') {
      w.any(wire[f]);
      continue;
    }
    w.arrayHeader(entries.length);
    for (const e of entries) {
      w.arrayHeader(e.deleted ? 4 : 5);
      w.str(e.key);
      w.str(e.hlc);
      w.uint(e.seq);
      w.byte(e.deleted ? 1 : 0);
      if (e.deleted) continue;
      const packed = packedValueOf(e);
      if (packed !== undefined) w.bytes(packed);
      else w.any(e.value);
    }
  }
  return w.done();
}

/** Thrown by {@link Reader} when the bytes are not what the fast path expects. */
class NotFast extends Error {}

/**
 * Reads the MessagePack that {@link Writer} writes. Anything else (an unexpected type, a
 * truncated frame) throws {@link NotFast}, and the caller decodes the frame with msgpackr
 * instead, which then decodes it or reports it malformed.
 */
class Reader {
  pos = 0;
  private readonly view: DataView;

  constructor(readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  /** Moves past `n` bytes; returns where they start. */
  private advance(n: number): number {
    if (this.pos + n > this.buf.length) throw new NotFast();
    const at = this.pos;
    this.pos += n;
    return at;
  }

  private u8(): number {
    return this.view.getUint8(this.advance(1));
  }

  private u16(): number {
    return this.view.getUint16(this.advance(2));
  }

  private u32(): number {
    return this.view.getUint32(this.advance(4));
  }

  byte(): number {
    return this.buf[this.advance(1)] as number;
  }

  /** A non-negative integer as {@link Writer.uint} writes it (or as msgpackr packs one). */
  uint(): number {
    const t = this.byte();
    if (t < 0x80) return t;
    if (t === 0xcc) return this.u8();
    if (t === 0xcd) return this.u16();
    if (t === 0xce) return this.u32();
    if (t === 0xcb) return this.view.getFloat64(this.advance(8));
    throw new NotFast();
  }

  /** The byte length of a string whose header is `t`, or -1 if `t` is not a string. */
  private strLen(t: number): number {
    if (t >= 0xa0 && t <= 0xbf) return t - 0xa0;
    if (t === 0xd9) return this.u8();
    if (t === 0xda) return this.u16();
    if (t === 0xdb) return this.u32();
    return -1;
  }

  str(): string {
    const len = this.strLen(this.byte());
    if (len < 0) throw new NotFast();
    const start = this.advance(len);
    return textAt(this.buf, start, start + len);
  }

  arrayLen(): number {
    const t = this.byte();
    if (t >= 0x90 && t <= 0x9f) return t - 0x90;
    if (t === 0xdc) return this.u16();
    if (t === 0xdd) return this.u32();
    throw new NotFast();
  }

  /** Moves past one value of the kinds an entry's value may hold; returns where it started. */
  skip(): number {
    const start = this.pos;
    let pending = 1; // values still to skip (containers add their elements)
    while (pending > 0) {
      pending--;
      const t = this.byte();
      if (t < 0x80 || t >= 0xe0 || t === 0xc0 || t === 0xc2 || t === 0xc3) continue;
      if (t <= 0x8f) {
        pending += 2 * (t - 0x80);
        continue;
      }
      if (t <= 0x9f) {
        pending += t - 0x90;
        continue;
      }
      const len = this.strLen(t);
      if (len >= 0) {
        this.advance(len);
        continue;
      }
      switch (t) {
        case 0xcc:
        case 0xd0:
          this.advance(1);
          break;
        case 0xcd:
        case 0xd1:
          this.advance(2);
          break;
        case 0xca:
        case 0xce:
        case 0xd2:
          this.advance(4);
          break;
        case 0xcb:
        case 0xcf:
        case 0xd3:
          this.advance(8);
          break;
        case 0xdc:
          pending += this.u16();
          break;
        case 0xdd:
          pending += this.u32();
          break;
        case 0xde:
          pending += 2 * this.u16();
          break;
        case 0xdf:
          pending += 2 * this.u32();
          break;
        default:
          // Binary, extensions, 0xc1: not what values hold; let msgpackr decide.
          throw new NotFast();
      }
    }
    return start;
  }

  /** The next value, decoded by msgpackr (for the few small fields around the entries). */
  any(): unknown {
    const start = this.skip();
    return msgpack.unpack(this.buf.subarray(start, this.pos));
  }
}

/**
 * Decodes a page frame (mirror of {@link encodePageFrame}) without decoding its values: each
 * live entry is a {@link packedEntry} over its bytes in `bytes`, decoded only if read. A bulk
 * download then costs a string per key and version, not an object graph per value. Returns
 * `undefined` when `bytes` is not a page frame in the expected shape (msgpackr decodes it then).
 */
export function decodePageFrame(bytes: Uint8Array): Record<string, unknown> | undefined {
  const r = new Reader(bytes);
  try {
    const t = r.byte();
    if (t < 0x80 || t > 0x8f) return undefined;
    const fields = t - 0x80;
    const msg: Record<string, unknown> = {};
    let page = false;
    for (let f = 0; f < fields; f++) {
      const name = r.str();
      if (name === '__proto__') return undefined;
      if (name !== 'entries') {
        msg[name] = r.any();
        if (name === 'type') page = msg.type === 'page';
        if (!page) return undefined; // `type` comes first in every frame we write
        continue;
      }
      if (!page) return undefined;
      const n = r.arrayLen();
      const entries: Entry[] = new Array(n);
      for (let i = 0; i < n; i++) {
        const len = r.arrayLen();
        const key = r.str();
        const hlc = r.str();
        const seq = r.uint();
        const deleted = r.byte();
        if (deleted === 1 && len === 4) entries[i] = { key, hlc, seq, deleted: true };
        else if (deleted === 0 && len === 5) {
          const start = r.skip();
          entries[i] = new PackedEntry(key, hlc, seq, bytes.subarray(start, r.pos));
        } else return undefined;
      }
      msg.entries = entries;
    }
    return r.pos === bytes.length && page ? msg : undefined;
  } catch (e) {
    if (e instanceof NotFast) return undefined;
    throw e;
  }
}

/**
 * Checks `vals`, values back to back with entry `i`'s ending at `ends[i]` (a tombstone has no
 * bytes): each one must be exactly one MessagePack value of the kinds an entry's value may
 * hold (what a page frame's reader accepts), found without decoding it. Returns the index of
 * the first bad one, or -1.
 */
export function firstBadValue(vals: Uint8Array, ends: Uint32Array): number {
  const r = new Reader(vals);
  let start = 0;
  for (let i = 0; i < ends.length; i++) {
    const end = ends[i] as number;
    if (end < start || end > vals.length) return i;
    if (end > start) {
      r.pos = start;
      try {
        r.skip();
      } catch (e) {
        if (e instanceof NotFast) return i;
        throw e;
      }
      if (r.pos !== end) return i;
    }
    start = end;
  }
  return -1;
}
