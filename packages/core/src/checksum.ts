import type { Hlc } from './hlc';

/**
 * An order-independent checksum over the live (key, hlc) pairs of a bucket: two 32-bit hash
 * sums and a count, so adding and removing entries is O(1) and two replicas holding the same
 * live versions agree whatever order they applied ops in. Tombstones do not count: replicas
 * may legitimately hold or have purged them.
 */
export interface Checksum {
  count: number;
  a: number;
  b: number;
}

export function emptyChecksum(): Checksum {
  return { count: 0, a: 0, b: 0 };
}

/**
 * Adds (sign 1) or removes (-1) the hash of (key, hlc) to `sum`: two independent 32-bit hashes,
 * FNV-1a and a multiply-xorshift variant, over the key's units `units[k0, k1)`, a separator,
 * then the version's `units[h0, h1)` (UTF-16 units of strings, or ASCII bytes, which are the
 * same numbers). The state lives in locals: stored anywhere else, a 32-bit value that does
 * not fit a small integer is boxed on every write (Chromium's V8 compresses pointers).
 */
function hashInto(
  sum: Checksum,
  sign: 1 | -1,
  keyUnits: Uint8Array | Uint16Array,
  k0: number,
  k1: number,
  hlcUnits: Uint8Array | Uint16Array,
  h0: number,
  h1: number,
): void {
  let a = 0x811c9dc5;
  let b = 0x9747b28c;
  for (let i = k0; i < k1; i++) {
    const c = keyUnits[i] as number;
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  a = Math.imul(a ^ 0xff, 0x01000193);
  b = Math.imul(b ^ 0xff, 0x5bd1e995);
  for (let i = h0; i < h1; i++) {
    const c = hlcUnits[i] as number;
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  b ^= b >>> 13;
  b = Math.imul(b, 0xc2b2ae35);
  b ^= b >>> 16;
  sum.count += sign;
  sum.a = (sum.a + sign * (a >>> 0)) >>> 0;
  sum.b = (sum.b + sign * (b >>> 0)) >>> 0;
}

/** Scratch space for the units of a key and a version (one thread, no re-entry). */
let units = new Uint16Array(256);

/** Hashes strings by copying their UTF-16 units into {@link units}. */
function hashStrings(sum: Checksum, sign: 1 | -1, key: string, hlc: Hlc): void {
  const n = key.length + hlc.length;
  if (units.length < n) units = new Uint16Array(n * 2);
  const u = units;
  for (let i = 0; i < key.length; i++) u[i] = key.charCodeAt(i);
  for (let i = 0; i < hlc.length; i++) u[key.length + i] = hlc.charCodeAt(i);
  hashInto(sum, sign, u, 0, key.length, u, key.length, n);
}

/**
 * Adds a live (key, hlc) given as ASCII bytes (`keyBytes[k0, k1)`, `hlcBytes[h0, h1)`) to the
 * checksum, in place: the same as {@link checksumAdd} of their strings, without making them.
 * (A key with other characters must go through `checksumAdd`: the hash reads UTF-16 units.)
 */
export function checksumAddBytes(
  sum: Checksum,
  keyBytes: Uint8Array,
  k0: number,
  k1: number,
  hlcBytes: Uint8Array,
  h0: number,
  h1: number,
): void {
  hashInto(sum, 1, keyBytes, k0, k1, hlcBytes, h0, h1);
}

/** Adds a live (key, hlc) to the checksum, in place. */
export function checksumAdd(sum: Checksum, key: string, hlc: Hlc): void {
  hashStrings(sum, 1, key, hlc);
}

/** Removes a live (key, hlc) from the checksum, in place. */
export function checksumRemove(sum: Checksum, key: string, hlc: Hlc): void {
  hashStrings(sum, -1, key, hlc);
}

/**
 * Updates the checksum for a key whose state changes from `before` to `after` (either may be
 * absent or a tombstone).
 */
export function checksumReplace(
  sum: Checksum,
  key: string,
  before: { hlc: Hlc; deleted?: boolean | undefined } | undefined,
  after: { hlc: Hlc; deleted?: boolean | undefined } | undefined,
): void {
  if (before !== undefined && !before.deleted) checksumRemove(sum, key, before.hlc);
  if (after !== undefined && !after.deleted) checksumAdd(sum, key, after.hlc);
}

export function checksumEquals(x: Checksum, y: Checksum): boolean {
  return x.count === y.count && x.a === y.a && x.b === y.b;
}

/** Computes a checksum from scratch (tests, repair). */
export function checksumOf(
  entries: Iterable<{ key: string; hlc: Hlc; deleted?: boolean | undefined }>,
): Checksum {
  const sum = emptyChecksum();
  for (const e of entries) if (!e.deleted) checksumAdd(sum, e.key, e.hlc);
  return sum;
}
