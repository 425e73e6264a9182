import type { Entry, Value } from '@mittsync/core';

/**
 * Key-range pages: a bucket's entries live in records of up to {@link PAGE_MAX_ENTRIES}
 * entries each, keyed by `[bucket, firstKey]`, like the leaves of a B+tree. Page `i` holds the
 * keys in `[first_i, first_{i+1})`; a bucket's lowest page has the first key `''`, so every
 * key has exactly one home. Bulk catch-up then writes hundreds of entries per IndexedDB record
 * (per-record puts are what makes IndexedDB slow), and a point read touches one record.
 *
 * A page's entries are stored as an array of positional tuples, each value as its JSON text.
 * What costs most in a bulk write is the structured clone IndexedDB makes of every record, and
 * a clone of nested objects costs much more than one of a string. Measured in headless
 * Chromium with a throwaway script (100,000 entries of ~100 bytes in pages of 250): tuples with object values took 313 ms of `put` calls and 612 ms to
 * commit; tuples with JSON text 68 ms of `put` plus ~120 ms of `JSON.stringify`, 341 ms to
 * commit, and read back faster. Values are parsed only when an entry is handed out, so the
 * page cache holds compact strings and rewriting a page never re-encodes its values.
 */

/** A page splits once it holds more than this many entries... */
export const PAGE_MAX_ENTRIES = 512;
/** ...or more than this many (approximate) bytes. */
export const PAGE_MAX_BYTES = 64 * 1024;
/** Target size of the pages a split produces (room to grow before the next split). */
export const PAGE_SPLIT_ENTRIES = 256;

/**
 * A page in memory: its first key and its entries in key order, as the stored tuples (no
 * conversion on read; an `Entry` is built only for what a caller gets back). Never mutated.
 */
export interface Page {
  first: string;
  tuples: readonly StoredTuple[];
}

/** One stored entry: `[key, hlc, seq, 0, value as JSON]`, or a tombstone `[key, hlc, seq, 1]`. */
export type StoredTuple = [string, string, number, 0, string] | [string, string, number, 1];

/** What is stored in the `pages` object store. */
export interface PageRecord {
  t: StoredTuple[];
}

/** An entry as stored. */
export function encodeTuple(e: Entry): StoredTuple {
  return e.deleted ? [e.key, e.hlc, e.seq, 1] : [e.key, e.hlc, e.seq, 0, JSON.stringify(e.value)];
}

/** A stored tuple as an entry. */
export function decodeTuple(t: StoredTuple): Entry {
  return t[3] === 1
    ? { key: t[0], hlc: t[1], seq: t[2], deleted: true }
    : { key: t[0], hlc: t[1], seq: t[2], value: JSON.parse(t[4]) as Value };
}

/** Index of the last element `<= key` in sorted `firsts` (the page that holds `key`), or -1. */
export function pageIndexOf(firsts: readonly string[], key: string): number {
  let lo = 0;
  let hi = firsts.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((firsts[mid] as string) <= key) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/** Index of the first tuple with key `>= key`. */
export function lowerBound(tuples: readonly StoredTuple[], key: string): number {
  let lo = 0;
  let hi = tuples.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((tuples[mid] as StoredTuple)[0] < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The tuple at `key` in a page, if any. */
export function findInPage(page: Page, key: string): StoredTuple | undefined {
  const t = page.tuples[lowerBound(page.tuples, key)];
  return t !== undefined && t[0] === key ? t : undefined;
}

/**
 * Merges `puts` (sorted by key, unique) into `tuples` (sorted): a put replaces the tuple with
 * its key. Returns a new array; the inputs are untouched.
 */
export function mergeSorted(tuples: readonly StoredTuple[], puts: readonly StoredTuple[]): StoredTuple[] {
  const out: StoredTuple[] = [];
  let i = 0;
  let j = 0;
  while (i < tuples.length && j < puts.length) {
    const a = tuples[i] as StoredTuple;
    const b = puts[j] as StoredTuple;
    if (a[0] < b[0]) {
      out.push(a);
      i++;
    } else if (a[0] > b[0]) {
      out.push(b);
      j++;
    } else {
      out.push(b);
      i++;
      j++;
    }
  }
  while (i < tuples.length) out.push(tuples[i++] as StoredTuple);
  while (j < puts.length) out.push(puts[j++] as StoredTuple);
  return out;
}

function tupleBytes(t: StoredTuple): number {
  return 24 + t[0].length + t[1].length + (t[3] === 1 ? 0 : t[4].length);
}

/**
 * Splits an over-full page into pages of about {@link PAGE_SPLIT_ENTRIES} entries (fewer
 * when values are big). The first piece keeps `first`, so the page index only gains keys.
 */
export function splitPage(first: string, tuples: readonly StoredTuple[]): Page[] {
  let bytes = 0;
  for (const t of tuples) bytes += tupleBytes(t);
  if (tuples.length <= PAGE_MAX_ENTRIES && bytes <= PAGE_MAX_BYTES) return [{ first, tuples }];
  // Even pieces, so a split never leaves a sliver page behind.
  const pieces = Math.max(
    Math.ceil(tuples.length / PAGE_SPLIT_ENTRIES),
    Math.ceil(bytes / (PAGE_MAX_BYTES / 2)),
  );
  const size = Math.ceil(tuples.length / pieces);
  const pages: Page[] = [];
  for (let start = 0; start < tuples.length; start += size) {
    const chunk = tuples.slice(start, start + size);
    pages.push({ first: start === 0 ? first : (chunk[0] as StoredTuple)[0], tuples: chunk });
  }
  return pages;
}
