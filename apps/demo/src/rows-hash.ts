/**
 * A fingerprint of a bucket's contents: the number of live rows and a 64-bit hash over every
 * (key, value) pair in key order. The page computes it from a scan of its replica; the
 * end-to-end tests compute it in Node from the relay's pages and compare the two. Pure code,
 * no DOM and no Node APIs, so both sides import this one module.
 */

export interface RowsDigest {
  count: number;
  /** 16 hex digits. */
  hash: string;
}

/** JSON with object keys sorted, so equal values always serialize equally. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
}

/**
 * Digest of `rows` (any order; they are sorted by key here). Two lanes of FNV-1a with
 * different offsets and a final avalanche: not cryptographic, but any difference in a key, a
 * value or the set of rows changes it.
 */
export function digestRows(rows: Iterable<readonly [string, unknown]>): RowsDigest {
  const list = [...rows].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193 ^ 0x5bd1e995;
  const feed = (s: string) => {
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, 0x01000193);
      h2 = Math.imul(h2 ^ c, 0x5bd1e995) ^ (h2 >>> 15);
    }
  };
  for (const [key, value] of list) {
    feed(key);
    feed('\u0000');
    feed(canonicalJson(value));
    feed('\u0001');
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 0x85ebca6b) ^ list.length;
  h2 = Math.imul(h2 ^ (h2 >>> 13), 0xc2b2ae35) ^ (h1 >>> 7);
  const hex = (n: number) => (n >>> 0).toString(16).padStart(8, '0');
  return { count: list.length, hash: hex(h1) + hex(h2) };
}
