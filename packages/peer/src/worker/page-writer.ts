import { type Entry, keyOrder } from '@mittsync/core';
import { type BucketIndex, DELTA_LIMIT } from './bucket-index';
import type { PageCache } from './page-cache';
import {
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
  recordOf,
} from './pages';

/** The parts of the idb stores used here (the schema lives in idb-storage.ts). */
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

/**
 * Writes sorted, unique `puts` into a bucket inside a readwrite transaction: a page that gets
 * only a few of them (counting the deltas it already has) gets deltas; the others are read,
 * merged with their deltas and the puts, split if too big, and written back, their deltas
 * deleted. Nothing in memory changes here.
 */
export async function writeEntries(
  pages: PagesStore,
  deltas: DeltasStore,
  bucket: string,
  index: BucketIndex,
  cache: PageCache,
  puts: readonly Entry[],
): Promise<WritePlan> {
  // `puts` are sorted: find each one's page by walking forward from the previous one's (one
  // binary search per page touched, not per entry).
  const groups = new Map<string, Entry[]>();
  const pageFirsts = index.firsts;
  let at = -1;
  let group: Entry[] | undefined;
  for (const e of puts) {
    const next = pageFirsts[at + 1];
    if (group === undefined || (next !== undefined && e.key >= next)) {
      at = Math.max(0, pageIndexOf(pageFirsts, e.key));
      const home = pageFirsts.length === 0 ? '' : (pageFirsts[at] as string);
      group = [];
      groups.set(home, group);
    }
    group.push(e);
  }
  const deltaPuts: Entry[] = [];
  const deltaRecords = new Map<string, string>();
  const fold: string[] = [];
  for (const [home, group] of groups) {
    if (index.firsts.length > 0 && group.length + index.deltaCount(home) <= DELTA_LIMIT) {
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
    const group = groups.get(f) as Entry[];
    let base = stored;
    if (own.length > 0) base = mergeIntoPage(stored, own);
    // Entries that all sort after a well-filled page (a bulk download's next run of keys) start
    // pages of their own: rewriting the page they follow would store its entries again.
    else if (appendsTo(stored, group)) base = emptyPage((group[0] as Entry).key);
    for (const p of mergeAndSplit(base, group)) {
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

/**
 * Whether `group` (sorted) may go into new pages after `page` instead of being merged into it:
 * every key sorts after the page's last one, and the page is full enough to be left as it is
 * (three quarters of a split piece, so it stays above Chromium's 64 KiB compression threshold;
 * see pages.ts).
 */
function appendsTo(page: Page, group: readonly Entry[]): boolean {
  const n = page.keys.length;
  const last = page.keys[n - 1];
  if (last === undefined || (group[0] as Entry).key <= last) return false;
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
