import { type ColumnRange, type Entry, packedEntry } from '@mittsync/core';
import {
  keyAt,
  lowerBound,
  plainEntry,
  startIn,
  textAt,
  upperBound,
  valueBytesOf,
} from '@mittsync/core/columns';

/**
 * Key-range pages: a bucket's entries live in records of up to {@link PAGE_MAX_ENTRIES}
 * entries each, keyed by `[bucket, firstKey]`, like the leaves of a B+tree. Page `i` holds the
 * keys in `[first_i, first_{i+1})`; a bucket's lowest page has the first key `''`, so every
 * key has exactly one home. Bulk catch-up then writes hundreds of entries per IndexedDB record
 * (per-record puts are what makes IndexedDB slow), and a point read touches one record.
 *
 * A page is stored by column: its keys as one string, its versions as one string, its values
 * as their MessagePack bytes back to back in one `Uint8Array`, plus typed arrays of lengths.
 * What costs most in a bulk write is the structured clone IndexedDB makes of every record, and
 * the clone of a few strings and typed arrays is a copy of their bytes, where the clone of an
 * array of entries visits every element. Values come from the relay as MessagePack and stay
 * that way: a downloaded value is never decoded, re-encoded or parsed on its way to disk, only
 * when something reads it. (Schema 2 stored positional tuples with values as JSON text; a
 * 100,000-key join spent ~0.4 s of worker time cloning them and ~0.15 s in `JSON.stringify`.)
 */

/**
 * Page size. Chromium (156 here) writes a record whose serialized form is above 64 KiB much
 * faster than a smaller one: the cliff is sharp (63.4 KiB slow, 64.7 KiB fast), no blob files
 * appear, and records of random bytes gain little, which fits Chromium compressing big values
 * before they reach LevelDB. Smaller records go through LevelDB's log, memtable and
 * compactions as they are. Pages compress well (keys and versions repeat, values share field
 * names), so big records cost LevelDB a fraction of the bytes. Measured on disk: a join's
 * pages commit much faster (`idb_floor_100k_ms` 0.7-0.8 s -> 0.34-0.43 s, `idb_floor_1m_ms`
 * 5.6-6.7 s -> 1.85-2.2 s), and a cold `getAll` of 100k entries reads back in 0.35 s instead
 * of 1.7 s. Records of 256 KB and more were slower again. So a split makes pieces of ~128 KB
 * and a page grows to at most ~192 KB: both halves of a split page stay above the threshold.
 *
 * A page splits once it holds more than this many entries...
 */
export const PAGE_MAX_ENTRIES = 2048;
/** ...or more than this many (approximate) bytes. */
export const PAGE_MAX_BYTES = 192 * 1024;
/** Target size of the pages a split produces (room to grow before the next split). */
export const PAGE_SPLIT_ENTRIES = 1024;

/** Target size of the pages a split produces, in the same approximate bytes. */
export const PAGE_SPLIT_BYTES = 128 * 1024;

/** An entry's approximate bytes besides its value, as the size limits count them. */
const entryBytes = (key: string, hlc: string): number => 24 + key.length + hlc.length;

/** The approximate bytes of `page`, as the size limits count them. */
export function pageBytes(page: Page): number {
  let bytes = 0;
  for (let i = 0; i < page.keys.length; i++)
    bytes += entryBytes(page.keys[i] as string, page.hlcs[i] as string);
  return bytes + page.vals.length;
}

/** What is stored in the `pages` object store (and, for a page's deltas, in `deltas`). */
export interface PageRecord {
  /** Keys, concatenated. */
  k: string;
  /** Length of each key in `k`. */
  kl: Uint32Array;
  /** Versions (HLCs), concatenated. */
  h: string;
  /** Length of each version in `h`. */
  hl: Uint16Array;
  /** Relay sequence numbers. */
  s: Float64Array;
  /** Values as MessagePack, back to back; a tombstone has no bytes. */
  v: Uint8Array;
  /** End of each entry's value in `v` (entry `i`'s bytes start where entry `i - 1`'s end). */
  o: Uint32Array;
}

/**
 * A page in memory: its first key and its entries in key order, by column (see
 * {@link PageRecord}). Never mutated: a write builds a new page.
 */
export interface Page {
  readonly first: string;
  readonly keys: readonly string[];
  readonly hlcs: readonly string[];
  readonly seqs: Float64Array;
  readonly vals: Uint8Array;
  readonly ends: Uint32Array;
  /**
   * The stored form of the page, when it was read from a record or cut from downloaded runs
   * (what {@link recordOf} then returns as it is). Such a page splits its keys and versions
   * into strings only when something looks at them: most pages a join writes never are.
   */
  readonly record?: PageRecord;
}

/** How many entries `page` holds. */
export const sizeOf = (page: Page): number => page.keys.length;

const startOf = (page: Page, i: number): number => (i === 0 ? 0 : (page.ends[i - 1] as number));

/** Entry `i` of `page`; a live entry's value is decoded when read (and only then). */
export function entryAt(page: Page, i: number): Entry {
  const start = startOf(page, i);
  const end = page.ends[i] as number;
  const key = page.keys[i] as string;
  const hlc = page.hlcs[i] as string;
  const seq = page.seqs[i] as number;
  return start === end
    ? { key, hlc, seq, deleted: true }
    : packedEntry(key, hlc, seq, page.vals.subarray(start, end));
}

/** Entry `i` of `page` as a plain object, its value decoded (what readers outside get). */
export const plainEntryAt = (page: Page, i: number): Entry => plainEntry(entryAt(page, i));

/** Whether entry `i` of `page` is a tombstone. */
export const isTombstoneAt = (page: Page, i: number): boolean => startOf(page, i) === page.ends[i];

const NO_BYTES = new Uint8Array(0);

function splitBy(joined: string, lengths: Uint32Array | Uint16Array): string[] {
  const out: string[] = new Array(lengths.length);
  let at = 0;
  for (let i = 0; i < lengths.length; i++) {
    const end = at + (lengths[i] as number);
    out[i] = joined.slice(at, end);
    at = end;
  }
  return out;
}

/** A stored record as a page (its keys and versions made strings when first read). */
export function pageFromRecord(first: string, rec: PageRecord): Page {
  let keys: string[] | undefined;
  let hlcs: string[] | undefined;
  return {
    first,
    get keys() {
      keys ??= splitBy(rec.k, rec.kl);
      return keys;
    },
    get hlcs() {
      hlcs ??= splitBy(rec.h, rec.hl);
      return hlcs;
    },
    seqs: rec.s,
    vals: rec.v,
    ends: rec.o,
    record: rec,
  };
}

/** A page as its stored record. */
export function recordOf(page: Page): PageRecord {
  if (page.record !== undefined) return page.record;
  const n = page.keys.length;
  const kl = new Uint32Array(n);
  const hl = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    kl[i] = (page.keys[i] as string).length;
    hl[i] = (page.hlcs[i] as string).length;
  }
  return { k: page.keys.join(''), kl, h: page.hlcs.join(''), hl, s: page.seqs, v: page.vals, o: page.ends };
}

/** An empty page starting at `first`. */
export function emptyPage(first: string): Page {
  return { first, keys: [], hlcs: [], seqs: new Float64Array(0), vals: NO_BYTES, ends: new Uint32Array(0) };
}

/** A page of `entries` (sorted by key, unique). */
export function pageOf(first: string, entries: readonly Entry[]): Page {
  return mergeIntoPage(emptyPage(first), entries);
}

/** Index of the last element `<= key` in sorted `firsts` (the page that holds `key`), or -1. */
export function pageIndexOf(firsts: readonly string[], key: string): number {
  return upperBound(firsts, key) - 1;
}

/** Where `key` is in `page`, or -1. */
export function findInPage(page: Page, key: string): number {
  const i = lowerBound(page.keys, key);
  return page.keys[i] === key ? i : -1;
}

/**
 * `page` with `puts` (sorted by key, unique) merged in: a put replaces the entry with its key.
 * Returns a new page; the inputs are untouched.
 */
export function mergeIntoPage(page: Page, puts: readonly Entry[]): Page {
  return mergePages(page, puts, false)[0] as Page;
}

/**
 * Like {@link mergeIntoPage}, but an over-full result comes back split into pages of about
 * {@link PAGE_SPLIT_ENTRIES} entries (fewer when values are big), built in one pass: no
 * merged page is made only to be cut up. The first piece keeps `page.first`, so the page
 * index only gains keys.
 */
export function mergeAndSplit(page: Page, puts: readonly Entry[]): Page[] {
  return mergePages(page, puts, true);
}

/**
 * Splits an over-full page into even pieces, so a split never leaves a sliver page behind.
 */
export function splitPage(page: Page): Page[] {
  return mergePages(page, [], true);
}

/** How many pieces `n` entries of `bytes` (approximate) bytes are cut into. */
function piecesFor(n: number, bytes: number): number {
  if (n <= PAGE_MAX_ENTRIES && bytes <= PAGE_MAX_BYTES) return 1;
  return Math.max(Math.ceil(n / PAGE_SPLIT_ENTRIES), Math.ceil(bytes / PAGE_SPLIT_BYTES));
}

const latin1 = new TextDecoder('latin1');

/**
 * Pieces `from..to-1` of `bytes` (UTF-8, piece `i` ending at `ends[i]`) as one string; writes
 * each piece's UTF-16 length to `lengths` from `at` on.
 */
function joinedText(
  bytes: Uint8Array,
  ends: Uint32Array,
  from: number,
  to: number,
  lengths: Uint32Array | Uint16Array,
  at: number,
): string {
  const start = startIn(ends, from);
  const end = startIn(ends, to);
  let ascii = true;
  for (let i = start; i < end && ascii; i++) ascii = (bytes[i] as number) < 0x80;
  if (ascii) {
    // One decode for the lot (ASCII reads the same in latin1, and fastest).
    for (let i = from; i < to; i++) lengths[at + i - from] = (ends[i] as number) - startIn(ends, i);
    return latin1.decode(bytes.subarray(start, end));
  }
  const parts: string[] = [];
  for (let i = from; i < to; i++) {
    const text = textAt(bytes, startIn(ends, i), ends[i] as number);
    lengths[at + i - from] = text.length;
    parts.push(text);
  }
  return parts.join('');
}

/**
 * The record of a page holding `ranges` (in key order): every column copied once, keys and
 * versions decoded as a whole (IndexedDB clones a few long strings and typed arrays faster
 * than anything else: a record of one packed buffer cost ~70% more to put here, measured in
 * the join benchmark).
 */
function recordOfRanges(ranges: readonly ColumnRange[]): PageRecord {
  let n = 0;
  let bytes = 0;
  for (const { c, from, to } of ranges) {
    n += to - from;
    bytes += startIn(c.valEnds, to) - startIn(c.valEnds, from);
  }
  const kl = new Uint32Array(n);
  const hl = new Uint16Array(n);
  const s = new Float64Array(n);
  const v = new Uint8Array(bytes);
  const o = new Uint32Array(n);
  const keys: string[] = [];
  const hlcs: string[] = [];
  let at = 0;
  let base = 0;
  for (const { c, from, to } of ranges) {
    keys.push(joinedText(c.keyBytes, c.keyEnds, from, to, kl, at));
    hlcs.push(joinedText(c.hlcBytes, c.hlcEnds, from, to, hl, at));
    s.set(c.seqs.subarray(from, to), at);
    const v0 = startIn(c.valEnds, from);
    v.set(c.vals.subarray(v0, startIn(c.valEnds, to)), base);
    for (let i = from; i < to; i++) o[at + i - from] = base + (c.valEnds[i] as number) - v0;
    base += startIn(c.valEnds, to) - v0;
    at += to - from;
  }
  return { k: keys.join(''), kl, h: hlcs.join(''), hl, s, v, o };
}

/**
 * `ranges` (in key order, none overlapping, not all empty) as new pages, cut into even pieces
 * as a split would cut them; each piece's record is copied from the ranges (the only copy a
 * downloaded entry gets on its way to disk).
 */
export function pagesOfRanges(ranges: readonly ColumnRange[]): Page[] {
  let n = 0;
  let bytes = 0;
  for (const { c, from, to } of ranges) {
    n += to - from;
    bytes += 24 * (to - from);
    for (const ends of [c.keyEnds, c.hlcEnds, c.valEnds]) bytes += startIn(ends, to) - startIn(ends, from);
  }
  const size = Math.max(1, Math.ceil(n / piecesFor(n, bytes)));
  const out: Page[] = [];
  let piece: ColumnRange[] = [];
  let room = size;
  const flush = () => {
    const head = piece[0] as ColumnRange;
    out.push(pageFromRecord(keyAt(head.c, head.from), recordOfRanges(piece)));
    piece = [];
    room = size;
  };
  for (const { c, from, to } of ranges) {
    for (let at = from; at < to; ) {
      const take = Math.min(room, to - at);
      piece.push({ c, from: at, to: at + take });
      at += take;
      room -= take;
      if (room === 0) flush();
    }
  }
  if (piece.length > 0) flush();
  return out;
}

function mergePages(page: Page, puts: readonly Entry[], split: boolean): Page[] {
  const old = page.keys;
  const putBytes = puts.map(valueBytesOf);
  // The merged order, as sources: old entry i (i >= 0) or put j (-1 - j).
  const order = new Int32Array(old.length + puts.length);
  let n = 0;
  let bytes = 0;
  let i = 0;
  const takeOld = (upTo: number) => {
    for (; i < upTo; i++) {
      order[n++] = i;
      bytes += entryBytes(old[i] as string, page.hlcs[i] as string);
    }
  };
  puts.forEach((p, j) => {
    takeOld(lowerBound(old, p.key, i));
    if (old[i] === p.key) i++;
    order[n++] = -1 - j;
    bytes += entryBytes(p.key, p.hlc);
  });
  takeOld(old.length);
  for (let x = 0; x < n; x++) bytes += valueLength(page, putBytes, order[x] as number);
  const pieces = split ? piecesFor(n, bytes) : 1;
  const size = Math.max(1, Math.ceil(n / pieces));
  const out: Page[] = [];
  for (let from = 0; from < n || out.length === 0; from += size) {
    const to = Math.min(n, from + size);
    out.push(build(page, puts, putBytes, order, from, to));
  }
  return out;
}

/** Entries `from..to-1` of `page` as a page of their own (first key: `page.first` from 0, else theirs). */
export function cutPage(page: Page, from: number, to: number): Page {
  const order = new Int32Array(to - from);
  for (let i = 0; i < order.length; i++) order[i] = from + i;
  const cut = build(page, [], [], order, 0, order.length);
  return from === 0 ? cut : { ...cut, first: page.keys[from] as string };
}

/** Bytes of the value at merge source `src` (see mergePages): old entry `src`, or put `-1 - src`. */
function valueLength(page: Page, putBytes: readonly Uint8Array[], src: number): number {
  return src >= 0
    ? (page.ends[src] as number) - startOf(page, src)
    : (putBytes[-1 - src] as Uint8Array).length;
}

/** The page of merged positions `from..to-1` (see mergePages). */
function build(
  page: Page,
  puts: readonly Entry[],
  putBytes: readonly Uint8Array[],
  order: Int32Array,
  from: number,
  to: number,
): Page {
  const len = to - from;
  let total = 0;
  for (let x = from; x < to; x++) total += valueLength(page, putBytes, order[x] as number);
  const keys: string[] = new Array(len);
  const hlcs: string[] = new Array(len);
  const seqs = new Float64Array(len);
  const ends = new Uint32Array(len);
  const vals = new Uint8Array(total);
  let at = 0;
  let x = from;
  while (x < to) {
    const src = order[x] as number;
    const o = x - from;
    if (src < 0) {
      const p = puts[-1 - src] as Entry;
      const b = putBytes[-1 - src] as Uint8Array;
      vals.set(b, at);
      at += b.length;
      keys[o] = p.key;
      hlcs[o] = p.hlc;
      seqs[o] = p.seq;
      ends[o] = at;
      x++;
      continue;
    }
    // A run of consecutive old entries: their values in one copy.
    let y = x + 1;
    while (y < to && order[y] === (order[y - 1] as number) + 1) y++;
    const last = src + (y - x) - 1;
    const base = startOf(page, src);
    const stop = page.ends[last] as number;
    vals.set(page.vals.subarray(base, stop), at);
    for (let s = src; s <= last; s++, x++) {
      const q = x - from;
      keys[q] = page.keys[s] as string;
      hlcs[q] = page.hlcs[s] as string;
      seqs[q] = page.seqs[s] as number;
      ends[q] = at + (page.ends[s] as number) - base;
    }
    at += stop - base;
  }
  const first = from === 0 ? page.first : (keys[0] as string);
  return { first, keys, hlcs, seqs, vals, ends };
}
