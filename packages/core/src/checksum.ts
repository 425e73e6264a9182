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

/** Two independent 32-bit hashes of (key, hlc): FNV-1a and a multiply-xorshift variant. */
function hashPair(key: string, hlc: Hlc): [number, number] {
  let a = 0x811c9dc5;
  let b = 0x9747b28c;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  a = Math.imul(a ^ 0xff, 0x01000193);
  b = Math.imul(b ^ 0xff, 0x5bd1e995);
  for (let i = 0; i < hlc.length; i++) {
    const c = hlc.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  b ^= b >>> 13;
  b = Math.imul(b, 0xc2b2ae35);
  b ^= b >>> 16;
  return [a >>> 0, b >>> 0];
}

/** Adds a live (key, hlc) to the checksum, in place. */
export function checksumAdd(sum: Checksum, key: string, hlc: Hlc): void {
  const [a, b] = hashPair(key, hlc);
  sum.count++;
  sum.a = (sum.a + a) >>> 0;
  sum.b = (sum.b + b) >>> 0;
}

/** Removes a live (key, hlc) from the checksum, in place. */
export function checksumRemove(sum: Checksum, key: string, hlc: Hlc): void {
  const [a, b] = hashPair(key, hlc);
  sum.count--;
  sum.a = (sum.a - a) >>> 0;
  sum.b = (sum.b - b) >>> 0;
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
