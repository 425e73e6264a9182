import type { ColumnRange, Entry } from '@mittsync/core';
import { keyAt, lowerBound, lowerBoundIn, rangeEntries, rangesSize } from '@mittsync/core/columns';
import { keyOrder } from '@mittsync/core/model';
import { type BucketIndex, DELTA_LIMIT } from './bucket-index';
import type { PageCache } from './page-cache';
import {
  cutPage,
  emptyPage,
  entryAt,
  mergeAndSplit,
  mergeIntoPage,
  PAGE_SPLIT_BYTES,
  PAGE_SPLIT_ENTRIES,
  type Page,
  type PageRecord,
  pageBytes,
  pageFromRecord,
  pageIndexOf,
  pageOf,
  pagesOfRanges,
  recordOf,
} from './pages';

/** The parts of the idb stores used here (the schema lives in storage.ts). */
export interface PagesStore {
  get(key: [string, string]): Promise<PageRecord | undefined>;
  put(value: PageRecord, key: [string, string]): Promise<unknown>;
}
/** The part of the deltas store used here. */
export interface DeltasStore {
  put(value: PageRecord, key: [string, string]): Promise<unknown>;
  delete(key: [string, string]): Promise<unknown>;
}

/** What a commit changed, applied to the memory views once its transaction completed. */
export interface WritePlan {
  written: Page[];
  firsts: string[];
  folded: string[];
  /**
   * The deltas written, as read back from their records: values as MessagePack bytes, so a
   * later rewrite of the record copies them instead of encoding them again.
   */
  deltaPuts: Entry[];
  /** The delta record each of `deltaPuts` went to. */
  deltaRecords: Map<string, string>;
}

const quiet = (p: Promise<unknown>) => void p.catch(() => undefined);

/** Entries `from..to-1` of a run: the part of a commit's entries that falls in one page. */
type Slice = ColumnRange;

/**
 * Writes `runs` (ranges of sorted runs; no key in two) into a bucket inside a readwrite
 * transaction: a page that gets only a few of them (counting the deltas it already has) gets
 * deltas; the others are read, merged with their deltas and the new entries, split if too big,
 * and written back, their deltas deleted. Entries that start new pages after a well-filled one
 * (a bulk download's next keys) are cut from their run by column, never taken apart into
 * entries. Nothing in memory changes here.
 */
export async function writeEntries(
  pages: PagesStore,
  deltas: DeltasStore,
  bucket: string,
  index: BucketIndex,
  cache: PageCache,
  runs: readonly ColumnRange[],
): Promise<WritePlan> {
  // Each run is sorted: find each key's page by walking forward from the previous key's (one
  // binary search per page touched, not per entry).
  const groups = new Map<string, Slice[]>();
  const pageFirsts = index.firsts;
  for (const run of runs) {
    const { c } = run;
    let from = run.from;
    while (from < run.to) {
      const at = Math.max(0, pageIndexOf(pageFirsts, keyAt(c, from)));
      const home = pageFirsts.length === 0 ? '' : (pageFirsts[at] as string);
      const next = pageFirsts[at + 1];
      const to = next === undefined ? run.to : lowerBoundIn(c, next, from + 1, run.to);
      const list = groups.get(home);
      if (list === undefined) groups.set(home, [{ c, from, to }]);
      else list.push({ c, from, to });
      from = to;
    }
  }
  const deltaPuts: Entry[] = [];
  const deltaRecords = new Map<string, string>();
  const fold: string[] = [];
  for (const [home, slices] of groups) {
    if (index.firsts.length > 0 && rangesSize(slices) + index.deltaCount(home) <= DELTA_LIMIT) {
      const group = slices.flatMap(rangeEntries);
      for (const e of group) deltaRecords.set(e.key, index.recordFor(e.key, home));
      deltaPuts.push(...group);
    } else fold.push(home);
  }
  // The deltas each folded page absorbs (and their records lose).
  const absorbed = fold.map((f) => index.deltasOf(f));
  const packedDeltas = writeDeltas(deltas, bucket, index, deltaPuts, deltaRecords, absorbed.flat());
  const cached = fold.map((f) => cache.get(bucket, f));
  const recs = await Promise.all(
    fold.map((f, i) => (cached[i] !== undefined ? undefined : pages.get([bucket, f]))),
  );
  const written: Page[] = [];
  const added: string[] = [];
  fold.forEach((f, i) => {
    const rec = recs[i];
    const stored = cached[i] ?? (rec === undefined ? emptyPage(f) : pageFromRecord(f, rec));
    const own = absorbed[i] as Entry[];
    // Runs are disjoint: slices in key order make one sorted group.
    const slices = (groups.get(f) as Slice[]).sort((x, y) =>
      keyAt(x.c, x.from) < keyAt(y.c, y.from) ? -1 : 1,
    );
    let made: Page[];
    // Entries that all sort after a well-filled page (a bulk download's next run of keys) start
    // pages of their own: rewriting the page they follow would store its entries again.
    const gap = own.length === 0 ? gapFor(stored, slices) : -1;
    if (own.length === 0 && appendsTo(stored, slices)) made = pagesOfRanges(slices);
    else if (gap >= 0) made = cutAtGap(stored, gap, slices);
    else {
      const base = own.length > 0 ? mergeIntoPage(stored, own) : stored;
      made = mergeAndSplit(base, slices.flatMap(rangeEntries));
    }
    for (const p of made) {
      quiet(pages.put(recordOf(p), [bucket, p.first]));
      written.push(p);
      if (p.first !== f) added.push(p.first);
    }
    if (index.firsts.length === 0) added.push(f);
  });
  const firsts = added.length === 0 ? index.firsts : [...new Set([...index.firsts, ...added])].sort();
  return {
    written,
    firsts,
    folded: fold,
    deltaPuts: deltaPuts.map((e) => packedDeltas.get(e.key) as Entry),
    deltaRecords,
  };
}

/** Below this many new entries, merging them into their page costs less than cutting it. */
const GAP_CUT_MIN = 256;

/**
 * Where `slices` (sorted, at least {@link GAP_CUT_MIN} entries) fall between two neighbouring
 * keys of `page` with none of its keys among them: the index of the page's first key after
 * them, or -1. A bulk download fills such gaps: its parallel ranges leave a page holding the
 * end of one range and the start of the next, and the first range's next run lands between.
 */
function gapFor(page: Page, slices: readonly Slice[]): number {
  if (rangesSize(slices) < GAP_CUT_MIN) return -1;
  const head = slices[0] as Slice;
  const tail = slices[slices.length - 1] as Slice;
  const j = lowerBound(page.keys, keyAt(head.c, head.from));
  if (j === 0 || j === page.keys.length) return -1; // nothing before (or after): not a gap
  return (page.keys[j] as string) > keyAt(tail.c, tail.to - 1) ? j : -1;
}

/**
 * The pages for `slices` landing in the gap of `page` before its key `j`: the page's entries
 * before the gap keep its first key, the new entries get pages of their own (cut from their
 * ranges, like a download appended after a page), and the page's entries after the gap start a
 * page at their first key. The new entries are never taken apart into entries.
 */
function cutAtGap(page: Page, j: number, slices: readonly Slice[]): Page[] {
  return [cutPage(page, 0, j), ...pagesOfRanges(slices), cutPage(page, j, page.keys.length)];
}

/**
 * Whether `slices` (sorted) may go into new pages after `page` instead of being merged into it:
 * every key sorts after the page's last one, and the page is full enough to be left as it is
 * (three quarters of a split piece, so it stays above Chromium's 64 KiB compression threshold;
 * see pages.ts).
 */
function appendsTo(page: Page, slices: readonly Slice[]): boolean {
  const n = page.keys.length;
  const last = page.keys[n - 1];
  const head = slices[0] as Slice;
  if (last === undefined || keyAt(head.c, head.from) <= last) return false;
  return n >= (PAGE_SPLIT_ENTRIES * 3) / 4 || pageBytes(page) >= (PAGE_SPLIT_BYTES * 3) / 4;
}

/**
 * Rewrites every delta record the commit changes: records gaining `puts` (at the records
 * `where` names) and records losing the `absorbed` deltas (deleted once empty). Returns the
 * entries of the records written, by key, in their stored (packed) form.
 */
function writeDeltas(
  deltas: DeltasStore,
  bucket: string,
  index: BucketIndex,
  puts: readonly Entry[],
  where: ReadonlyMap<string, string>,
  absorbed: readonly Entry[],
): Map<string, Entry> {
  const stored = new Map<string, Entry>();
  const gained = new Map<string, Entry[]>();
  for (const e of puts) {
    const r = where.get(e.key) as string;
    const list = gained.get(r);
    if (list === undefined) gained.set(r, [e]);
    else list.push(e);
  }
  const lost = new Set<string>();
  const touched = new Set(gained.keys());
  for (const e of absorbed) {
    lost.add(e.key);
    touched.add(index.recordOf(e.key) as string);
  }
  for (const r of touched) {
    const byKey = new Map<string, Entry>();
    for (const e of index.deltasIn(r)) if (!lost.has(e.key)) byKey.set(e.key, e);
    for (const e of gained.get(r) ?? []) byKey.set(e.key, e);
    if (byKey.size === 0) {
      quiet(deltas.delete([bucket, r]));
      continue;
    }
    const page = pageOf(r, [...byKey.values()].sort(keyOrder));
    quiet(deltas.put(recordOf(page), [bucket, r]));
    for (let i = 0; i < page.keys.length; i++) stored.set(page.keys[i] as string, entryAt(page, i));
  }
  return stored;
}
