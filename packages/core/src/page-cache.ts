import {
  type ColumnRange,
  columnSize,
  columnsOf,
  type EntryColumns,
  joinRuns,
  keyAt,
  lowerBoundIn,
} from './columns';
import type { Entry } from './model';

/**
 * A part of the key space read for a join's download: its entries as they were at `readSeq`.
 * It holds the keys `k` with `after < k <= end` (an absent bound is open).
 */
interface Segment {
  after: string | undefined;
  end: string | undefined;
  cols: EntryColumns;
  readSeq: number;
  bytes: number;
}

/** What serving a page from the cache needs to know of the bucket now. */
export interface PageCacheSource {
  /** The bucket's head seq. */
  head: number;
  /**
   * The entries changed since `since` with `after < key <= until`, in key order, at most
   * `limit`; the range holds about `span` entries.
   */
  changed(
    since: number,
    after: string | undefined,
    until: string | undefined,
    limit: number,
    span: number,
  ): Entry[];
}

/** A page served from the cache: its entries and where the next page of its range starts. */
export interface CachedPage {
  cols: EntryColumns;
  next: string | null;
}

/**
 * Most entries changed since a segment was read that a page served from it takes on top: past
 * this the segment is read again instead.
 */
export const MAX_OVERLAY = 256;

/** What a segment of `cols` counts against the budget. */
const segmentBytes = (cols: EntryColumns): number =>
  cols.keyBytes.length + cols.hlcBytes.length + cols.vals.length + 20 * columnSize(cols);

/** The lower of two upper bounds (undefined is +infinity). */
const minEnd = (a: string | undefined, b: string | undefined): string | undefined =>
  a === undefined ? b : b === undefined ? a : a < b ? a : b;

/**
 * The memory the page caches of a relay's buckets share: past `maxBytes`, segments are
 * dropped least recently used first, whichever bucket holds them. A relay keeps hundreds of
 * bucket hosts; their caches together stay within one budget.
 *
 * A cache never drops its own segments to make room for another of its own: a join reads its
 * view's key space once, in order, so in a view larger than the budget plain LRU would drop
 * each segment just before the next join needs it, and serve nothing (a 1,000,000-key bucket
 * is about 150 MB of segments; the default budget is 64 MB). This way the first part the
 * budget holds stays, and every join of the view is served that part from memory. Other views
 * and buckets still take the room of least recently used segments, so a view nobody joins any
 * more gives way to those joined now.
 */
export class PageCacheBudget {
  private used = 0;
  /** Every cached segment, least recently used first, with the cache holding it. */
  private readonly lru = new Map<Segment, PageCache>();

  constructor(readonly maxBytes: number) {}

  /** Bytes held by all the caches. */
  get size(): number {
    return this.used;
  }

  /**
   * Takes `seg` into `owner`, dropping other caches' least recently used segments as room is
   * needed; false (and nothing dropped) when only `owner`'s own segments could make room.
   */
  admit(seg: Segment, owner: PageCache): boolean {
    let over = this.used + seg.bytes - this.maxBytes;
    const victims: [Segment, PageCache][] = [];
    for (const [old, cache] of this.lru) {
      if (over <= 0) break;
      if (cache === owner) continue;
      victims.push([old, cache]);
      over -= old.bytes;
    }
    if (over > 0) return false;
    for (const [old, cache] of victims) {
      cache.forget(old);
      this.release(old);
    }
    this.lru.set(seg, owner);
    this.used += seg.bytes;
    return true;
  }

  /** `seg` now holds `bytes` (refreshed in place). */
  resize(seg: Segment, bytes: number): void {
    if (this.lru.has(seg)) this.used += bytes - seg.bytes;
    seg.bytes = bytes;
  }

  touch(seg: Segment): void {
    const owner = this.lru.get(seg);
    if (owner === undefined) return;
    this.lru.delete(seg);
    this.lru.set(seg, owner);
  }

  release(seg: Segment): void {
    if (this.lru.delete(seg)) this.used -= seg.bytes;
  }
}

/**
 * Catch-up pages of a whole bucket kept by column, so the next joins of a bucket are served
 * from memory instead of its store: most of what a relay spends on a join's download is
 * reading rows (SQLite), not sending them.
 *
 * The cache holds segments of the key space as they were read, each with the seq it was read
 * at. A page served from a segment takes on top the entries changed since then (the store's
 * range read by seq), so it is as current as a page read now: the join protocol's guarantee
 * ("a page holds every change committed before it was read") stays as it was. A page that is a
 * whole segment with changes on top replaces the segment, as of the bucket's head; a segment
 * with more than {@link MAX_OVERLAY} changes in the part served is read again; tombstone
 * collection (which deletes rows without a new seq) empties the cache.
 *
 * A request whose cursor falls inside a segment is served from there, up to the segment's end,
 * so joins whose page sizes differ still meet the segments the first join read. Memory is
 * bounded by a {@link PageCacheBudget}, shared by the buckets of a relay.
 */
export class PageCache {
  /** Segments, none overlapping. */
  private readonly segs = new Set<Segment>();
  private horizon = 0;

  constructor(private readonly budget: PageCacheBudget) {}

  /** Forgets every segment. */
  clear(): void {
    for (const s of this.segs) this.drop(s);
  }

  /**
   * Empties the cache when the bucket's tombstone horizon moved since it was filled: collected
   * tombstones leave the store without a seq a page could see.
   */
  checkHorizon(horizon: number): void {
    if (horizon !== this.horizon) this.clear();
    this.horizon = horizon;
  }

  private find(after: string | undefined): Segment | undefined {
    for (const s of this.segs) {
      const starts = after === undefined ? s.after === undefined : s.after === undefined || s.after <= after;
      if (starts && (after === undefined || s.end === undefined || after < s.end)) return s;
    }
    return undefined;
  }

  /**
   * The page of `after < key <= until`, at most `limit` entries, from the segment holding its
   * start, with the changes since that segment was read; undefined when no segment holds it
   * or too much changed.
   */
  serve(
    src: PageCacheSource,
    after: string | undefined,
    until: string | undefined,
    limit: number,
  ): CachedPage | undefined {
    const seg = this.find(after);
    if (seg === undefined) return undefined;
    const upTo = minEnd(seg.end, until);
    const c = seg.cols;
    const n = columnSize(c);
    const from = after === undefined ? 0 : upperBoundIn(c, after);
    const to = upTo === undefined ? n : upperBoundIn(c, upTo, from);
    const changed =
      src.head > seg.readSeq
        ? src.changed(seg.readSeq, after, upTo, MAX_OVERLAY + 1, to - from)
        : ([] as Entry[]);
    if (changed.length > MAX_OVERLAY) {
      this.drop(seg);
      return undefined;
    }
    this.budget.touch(seg);
    const runs = overlay(c, from, to, changed);
    const total = runs.reduce((k, r) => k + (r.to - r.from), 0);
    if (total > limit) {
      const cut = cutRuns(runs, limit);
      const last = cut[cut.length - 1] as ColumnRange;
      return { cols: joinRuns(cut), next: keyAt(last.c, last.to - 1) };
    }
    const cols = joinRuns(runs);
    if (after === seg.after && upTo === seg.end) {
      // The page is the whole segment as of now: it takes the segment's place, so the next
      // join reads back only what changes after this one (not everything since the first).
      if (changed.length > 0) {
        this.budget.resize(seg, segmentBytes(cols));
        seg.cols = cols;
      }
      seg.readSeq = src.head;
      // Grown past the budget (keys added in its range): it goes rather than the budget.
      if (this.budget.size > this.budget.maxBytes) this.drop(seg);
    }
    // The segment's end is where the next page of the range starts, unless the range ends first.
    const next = upTo === until ? null : (upTo as string);
    return { cols, next };
  }

  /**
   * Keeps the page just read for `after < key <= until` at `readSeq`: `next` is where the
   * read stopped (null: at `until`).
   */
  add(
    after: string | undefined,
    until: string | undefined,
    cols: EntryColumns,
    next: string | null,
    readSeq: number,
  ): void {
    const end = next ?? until;
    const bytes = segmentBytes(cols);
    if (bytes > this.budget.maxBytes) return;
    for (const s of this.segs) {
      // Overlapping: (s.after, s.end] meets (after, end].
      const startsBeforeEnd = end === undefined || s.after === undefined || s.after < end;
      const endsAfterStart = after === undefined || s.end === undefined || s.end > after;
      if (startsBeforeEnd && endsAfterStart) this.drop(s);
    }
    const seg: Segment = { after, end, cols, readSeq, bytes };
    if (this.budget.admit(seg, this)) this.segs.add(seg);
  }

  /** Drops `seg` from this cache only (the budget let it go). */
  forget(seg: Segment): void {
    this.segs.delete(seg);
  }

  private drop(s: Segment): void {
    this.segs.delete(s);
    this.budget.release(s);
  }
}

/** How many views (the whole bucket, or a replication spec) of a bucket keep page caches. */
export const MAX_CACHED_VIEWS = 8;

/**
 * A bucket's page caches, one per view its joins download: the whole bucket (`''`), or one
 * replication spec (its JSON), the {@link MAX_CACHED_VIEWS} most recently joined.
 */
export class PageCaches {
  private readonly views = new Map<string, PageCache>();

  constructor(private readonly budget: PageCacheBudget) {}

  /** The cache of `view`'s pages. */
  of(view: string): PageCache {
    let cache = this.views.get(view);
    if (cache !== undefined) this.views.delete(view);
    else cache = new PageCache(this.budget);
    this.views.set(view, cache);
    for (const [key, old] of this.views) {
      if (this.views.size <= MAX_CACHED_VIEWS) break;
      old.clear();
      this.views.delete(key);
    }
    return cache;
  }
}

/** Index of the first key of `c[from..]` that is `> key`. */
function upperBoundIn(c: EntryColumns, key: string, from = 0): number {
  const i = lowerBoundIn(c, key, from);
  return i < columnSize(c) && keyAt(c, i) === key ? i + 1 : i;
}

/**
 * `c[from, to)` with `changed` (sorted by key, unique, within the same bounds) on top: a
 * changed entry replaces the one of its key or goes where its key belongs. As runs, so the
 * page is built with one copy of each column.
 */
function overlay(c: EntryColumns, from: number, to: number, changed: readonly Entry[]): ColumnRange[] {
  if (changed.length === 0) return to > from ? [{ c, from, to }] : [];
  const over = columnsOf(changed);
  const runs: ColumnRange[] = [];
  let at = from;
  for (let j = 0; j < changed.length; j++) {
    const key = (changed[j] as Entry).key;
    const i = lowerBoundIn(c, key, at, to);
    if (i > at) runs.push({ c, from: at, to: i });
    runs.push({ c: over, from: j, to: j + 1 });
    at = i < to && keyAt(c, i) === key ? i + 1 : i;
  }
  if (to > at) runs.push({ c, from: at, to });
  return runs;
}

/** The first `limit` entries of `runs`. */
function cutRuns(runs: readonly ColumnRange[], limit: number): ColumnRange[] {
  const out: ColumnRange[] = [];
  let room = limit;
  for (const r of runs) {
    if (room === 0) break;
    const take = Math.min(room, r.to - r.from);
    out.push({ c: r.c, from: r.from, to: r.from + take });
    room -= take;
  }
  return out;
}
