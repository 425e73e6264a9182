/**
 * Sort keys: bytes whose byte-wise order (SQLite's order of BLOBs, memcmp) is the order of
 * the keys by UTF-16 code units, core's `keyOrder`. SQLite orders TEXT by its UTF-8 bytes,
 * which is code point order: it differs from UTF-16 order where U+E000..U+FFFF ('！' U+FF01)
 * meet code points past U+FFFF ('😀', a surrogate pair in UTF-16), so the relay stores and
 * compares a sort key instead (without collations or SQL functions, which Durable Objects
 * don't allow).
 *
 * The sort key writes each UTF-16 code unit as UTF-8 writes a code point of the same value,
 * surrogates included (the encoding known as CESU-8). That code is prefix-free and keeps the
 * order of the units, so the concatenation keeps the order of the strings. A key without
 * surrogate pairs has the same bytes as its UTF-8 (no dearer to store or compare than the
 * TEXT was); a pair takes 6 bytes instead of 4. UTF-16BE bytes would order the same, at two
 * bytes for every ASCII character.
 */

const SURROGATE = /[\uD800-\uDFFF]/;

/**
 * True when the sort key of `key` is not its UTF-8: `key` holds a surrogate (a well-formed
 * key, a character past U+FFFF). For every other key, reading the sort key as UTF-8 TEXT
 * gives the key back.
 */
export const sortKeyIsNotUtf8 = (key: string): boolean => SURROGATE.test(key);

/** Most bytes the sort key of a string of `units` UTF-16 code units takes. */
export const maxSortKeyBytes = (units: number): number => units * 3;

/** Byte length of the sort key of `key`, without allocating. */
export function sortKeyLength(key: string): number {
  let n = 0;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    n += c < 0x80 ? 1 : c < 0x800 ? 2 : 3;
  }
  return n;
}

/**
 * Writes the sort key of `key` into `out` at `at`; returns the position after it. `out` must
 * have room for {@link maxSortKeyBytes} of `key.length` (typed arrays drop writes past the end).
 */
export function writeSortKey(out: Uint8Array, at: number, key: string): number {
  let p = at;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c < 0x80) out[p++] = c;
    else if (c < 0x800) {
      out[p++] = 0xc0 | (c >> 6);
      out[p++] = 0x80 | (c & 0x3f);
    } else {
      out[p++] = 0xe0 | (c >> 12);
      out[p++] = 0x80 | ((c >> 6) & 0x3f);
      out[p++] = 0x80 | (c & 0x3f);
    }
  }
  return p;
}

/** The sort key of `key`, in a new array of its exact length. */
export function sortKey(key: string): Uint8Array {
  const out = new Uint8Array(sortKeyLength(key));
  writeSortKey(out, 0, key);
  return out;
}

/**
 * Sort keys written into one reused buffer, for the per-op path (each write looks its key up
 * and upserts it): each call returns a view that is valid until the next call. SQLite copies
 * a bound BLOB, so a view bound to a statement may be overwritten once the statement ran.
 */
export class SortKeyWriter {
  private buf = new Uint8Array(256);

  /** The sort key of `key`, as a view into the buffer (valid until the next call). */
  of(key: string): Uint8Array {
    const need = maxSortKeyBytes(key.length);
    if (need > this.buf.length) this.buf = new Uint8Array(Math.max(need, this.buf.length * 2));
    return this.buf.subarray(0, writeSortKey(this.buf, 0, key));
  }
}

/**
 * The string a sort key was written from (tests, tools: stores read keys from their TEXT
 * column). Mirrors {@link writeSortKey}: 1 to 3 bytes per UTF-16 code unit.
 */
export function readSortKey(bytes: Uint8Array): string {
  const units: number[] = [];
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i] as number;
    if (b < 0x80) {
      units.push(b);
      i += 1;
    } else if (b < 0xe0) {
      units.push(((b & 0x1f) << 6) | ((bytes[i + 1] as number) & 0x3f));
      i += 2;
    } else {
      units.push(
        ((b & 0x0f) << 12) | (((bytes[i + 1] as number) & 0x3f) << 6) | ((bytes[i + 2] as number) & 0x3f),
      );
      i += 3;
    }
  }
  return String.fromCharCode(...units);
}
