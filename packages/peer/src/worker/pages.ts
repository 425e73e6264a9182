import { approxBytes, type Entry, type Value } from '@mittsync/core';
import { Packr } from 'msgpackr';

/**
 * Key-range pages: a bucket's entries live in records of up to {@link PAGE_MAX_ENTRIES}
 * entries each, keyed by `[bucket, firstKey]`, like the leaves of a B+tree. Page `i` holds the
 * keys in `[first_i, first_{i+1})`; a bucket's lowest page has the first key `''`, so every
 * key has exactly one home. Bulk catch-up then writes hundreds of entries per IndexedDB record
 * (per-record puts are what makes IndexedDB slow), and a point read touches one record.
 *
 * A page's entries are stored as one msgpack blob of positional tuples: measured in headless
 * Chromium, that beats storing the entry objects as structured-clone values on both write and
 * read (see the README).
 */

/** A page splits once it holds more than this many entries... */
export const PAGE_MAX_ENTRIES = 1024;
/** ...or more than this many (approximate) bytes. */
export const PAGE_MAX_BYTES = 256 * 1024;
/** Target size of the pages a split produces (room to grow before the next split). */
export const PAGE_SPLIT_ENTRIES = 512;

/** A decoded page: its first key and its entries in key order. Never mutated once built. */
export interface Page {
  first: string;
  entries: readonly Entry[];
}

/** What is stored in the `pages` object store. */
export interface PageRecord {
  /** msgpack of `[key, hlc, seq, deleted (0/1), value?][]`. */
  data: Uint8Array;
  /** Entry count, for stats without decoding. */
  n: number;
}

const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

export function encodePage(entries: readonly Entry[]): PageRecord {
  const tuples: unknown[] = new Array(entries.length);
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i] as Entry;
    tuples[i] = e.deleted ? [e.key, e.hlc, e.seq, 1] : [e.key, e.hlc, e.seq, 0, e.value];
  }
  // pack() returns a view into a buffer msgpackr reuses: copy before storing.
  return { data: packr.pack(tuples).slice(), n: entries.length };
}

export function decodePage(rec: PageRecord): Entry[] {
  const tuples = packr.unpack(rec.data) as unknown[][];
  const out: Entry[] = new Array(tuples.length);
  for (let i = 0; i < tuples.length; i++) {
    const t = tuples[i] as unknown[];
    out[i] =
      t[3] === 1
        ? { key: t[0] as string, hlc: t[1] as string, seq: t[2] as number, deleted: true }
        : { key: t[0] as string, hlc: t[1] as string, seq: t[2] as number, value: t[4] as Value };
  }
  return out;
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

/** Index of the first entry with key `>= key`. */
export function lowerBound(entries: readonly Entry[], key: string): number {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((entries[mid] as Entry).key < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The entry at `key` in a page, if any. */
export function findInPage(page: Page, key: string): Entry | undefined {
  const i = lowerBound(page.entries, key);
  const e = page.entries[i];
  return e !== undefined && e.key === key ? e : undefined;
}

/**
 * Merges `puts` (sorted by key, unique) into `entries` (sorted): a put replaces the entry with
 * its key. Returns a new array; the inputs are untouched.
 */
export function mergeSorted(entries: readonly Entry[], puts: readonly Entry[]): Entry[] {
  const out: Entry[] = [];
  let i = 0;
  let j = 0;
  while (i < entries.length && j < puts.length) {
    const a = entries[i] as Entry;
    const b = puts[j] as Entry;
    if (a.key < b.key) {
      out.push(a);
      i++;
    } else if (a.key > b.key) {
      out.push(b);
      j++;
    } else {
      out.push(b);
      i++;
      j++;
    }
  }
  while (i < entries.length) out.push(entries[i++] as Entry);
  while (j < puts.length) out.push(puts[j++] as Entry);
  return out;
}

function entryBytes(e: Entry): number {
  return 24 + e.key.length + e.hlc.length + (e.deleted ? 0 : approxBytes(e.value));
}

/**
 * Splits an over-full page into pages of about {@link PAGE_SPLIT_ENTRIES} entries (fewer
 * when values are big). The first piece keeps `first`, so the page index only gains keys.
 */
export function splitPage(first: string, entries: readonly Entry[]): Page[] {
  let bytes = 0;
  for (const e of entries) bytes += entryBytes(e);
  if (entries.length <= PAGE_MAX_ENTRIES && bytes <= PAGE_MAX_BYTES) return [{ first, entries }];
  // Even pieces, so a split never leaves a sliver page behind.
  const pieces = Math.max(
    Math.ceil(entries.length / PAGE_SPLIT_ENTRIES),
    Math.ceil(bytes / (PAGE_MAX_BYTES / 2)),
  );
  const size = Math.ceil(entries.length / pieces);
  const pages: Page[] = [];
  for (let start = 0; start < entries.length; start += size) {
    const chunk = entries.slice(start, start + size);
    pages.push({ first: start === 0 ? first : (chunk[0] as Entry).key, entries: chunk });
  }
  return pages;
}
