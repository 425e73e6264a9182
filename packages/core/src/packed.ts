import { Packr } from 'msgpackr';
import type { Entry, Value } from './model';

/**
 * Values a store already keeps as MessagePack (the relay's SQLite does) travel into page
 * frames byte for byte: a {@link packedEntry} holds the bytes and decodes them only if
 * something reads `value`, and the codec copies them into the frame instead of decoding and
 * re-encoding each value. The frame is the same MessagePack a plain entry would give (both
 * sides use the options below), so nothing changes for the receiver.
 */
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

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
    this.#decoded ??= { value: packr.unpack(this.#bytes) as Value };
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
    this.bytes(packr.pack(v));
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
