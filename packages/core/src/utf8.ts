/**
 * UTF-8 for keys and versions, without a `TextEncoder` round trip or a string per call where
 * it can be avoided: measuring ({@link utf8Length}), writing ({@link writeUtf8}) and reading
 * ({@link textAt}) side by side. A string with a lone surrogate has no UTF-8 form; the writer
 * says so instead of writing U+FFFD (which would be another key).
 */

/** UTF-8 byte length of a string, without allocating. */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/**
 * Writes `s` as UTF-8 into `out` at `at`; returns the position after it, or -1 when `s` has a
 * lone surrogate (no UTF-8 form: encoders would write U+FFFD, a different key).
 */
export function writeUtf8(out: Uint8Array, at: number, s: string): number {
  let p = at;
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) out[p++] = c;
    else if (c < 0x800) {
      out[p++] = 0xc0 | (c >> 6);
      out[p++] = 0x80 | (c & 0x3f);
    } else if (c >= 0xd800 && c <= 0xdfff) {
      const d = s.charCodeAt(i + 1);
      if (c > 0xdbff || !(d >= 0xdc00 && d <= 0xdfff)) return -1;
      c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
      i++;
      out[p++] = 0xf0 | (c >> 18);
      out[p++] = 0x80 | ((c >> 12) & 0x3f);
      out[p++] = 0x80 | ((c >> 6) & 0x3f);
      out[p++] = 0x80 | (c & 0x3f);
    } else {
      out[p++] = 0xe0 | (c >> 12);
      out[p++] = 0x80 | ((c >> 6) & 0x3f);
      out[p++] = 0x80 | (c & 0x3f);
    }
  }
  return p;
}

const latin1 = new TextDecoder('latin1');
const utf8 = new TextDecoder();

/** Scratch space of {@link textAt} (one thread, no re-entry). */
const CODES: number[] = [];

/** `bytes[start, end)` (UTF-8) as a string. */
export function textAt(bytes: Uint8Array, start: number, end: number): string {
  const len = end - start;
  if (len <= 64) {
    // Short ASCII (keys and versions mostly are): char codes into a reused array, then one
    // fromCharCode; twice as fast as a subarray per string, and cheaper than TextDecoder.
    const codes = CODES;
    codes.length = len;
    let i = 0;
    for (; i < len; i++) {
      const c = bytes[start + i] as number;
      if (c >= 0x80) break;
      codes[i] = c;
    }
    if (i === len) return String.fromCharCode.apply(null, codes);
    return utf8.decode(bytes.subarray(start, end));
  }
  let ascii = true;
  for (let i = start; i < end && ascii; i++) ascii = (bytes[i] as number) < 0x80;
  return (ascii ? latin1 : utf8).decode(bytes.subarray(start, end));
}

/**
 * Whether `bytes[start, end)` is well-formed UTF-8 (Unicode's table 3-7: no overlong forms, no
 * encoded surrogates, nothing past U+10FFFF, no truncated sequence). Decoders that substitute
 * U+FFFD, or that do not check continuation bytes (msgpackr's), would turn such bytes into the
 * string of other, valid bytes.
 */
export function isUtf8(bytes: Uint8Array, start: number, end: number): boolean {
  let i = start;
  while (i < end) {
    const c = bytes[i] as number;
    if (c < 0x80) {
      i++;
      continue;
    }
    if (c >= 0xc2 && c <= 0xdf) {
      if (i + 2 > end || ((bytes[i + 1] as number) & 0xc0) !== 0x80) return false;
      i += 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      if (i + 3 > end) return false;
      const c1 = bytes[i + 1] as number;
      // E0 needs A0.. (else overlong), ED at most 9F (else a surrogate).
      if (c1 < (c === 0xe0 ? 0xa0 : 0x80) || c1 > (c === 0xed ? 0x9f : 0xbf)) return false;
      if (((bytes[i + 2] as number) & 0xc0) !== 0x80) return false;
      i += 3;
    } else if (c >= 0xf0 && c <= 0xf4) {
      if (i + 4 > end) return false;
      const c1 = bytes[i + 1] as number;
      // F0 needs 90.. (else overlong), F4 at most 8F (else past U+10FFFF).
      if (c1 < (c === 0xf0 ? 0x90 : 0x80) || c1 > (c === 0xf4 ? 0x8f : 0xbf)) return false;
      if (((bytes[i + 2] as number) & 0xc0) !== 0x80 || ((bytes[i + 3] as number) & 0xc0) !== 0x80)
        return false;
      i += 4;
    } else return false;
  }
  return true;
}
