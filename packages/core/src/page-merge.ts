import type { BucketState, CatchUp } from './bucket-state';
import { checksumReplace } from './checksum';
import {
  type ColumnRange,
  checksumAddIn,
  columnEntries,
  columnSize,
  type EntryColumns,
  hlcAt,
  indexIn,
  isTombstoneIn,
  keyAt,
  maxHlcIn,
  rangeEntries,
} from './columns';
import { ABSENT, boundKept } from './fresh-join';
import { downloadedWins } from './mitt';
import type { Entry, Version } from './model';
import type { SyncContext } from './sync-context';

/** What merging a downloaded page needs: storage, the clock to observe, and change listeners. */
export type PageMergeContext = Pick<SyncContext, 'storage' | 'clock' | 'emitChange'>;

/** A downloaded page: entries, or columns when the relay sent columns (see `pageReq.cols`). */
export type DownloadedPage = readonly Entry[] | EntryColumns;

/** Whether a downloaded page came by column. */
export const isColumns = (p: DownloadedPage): p is EntryColumns => !Array.isArray(p);

/** How many entries a downloaded page holds. */
export const sizeOf = (p: DownloadedPage): number => (isColumns(p) ? columnSize(p) : p.length);

/**
 * Merges downloaded pages (each sorted by key, no key in two) into storage in one commit:
 * never over a newer version held in the mitt or stored. A fresh join decides most keys of a
 * page that came by column without looking at them one by one: only keys the mitt holds a
 * live op for, or the join keeps a version of, can lose, and those few are found by binary
 * search. The rest of the page goes to a columnar store as it came.
 *
 * This is the hot path of a large join: no per-entry allocation beyond the entries stored.
 */
export async function mergePages(
  ctx: PageMergeContext,
  b: BucketState,
  cu: CatchUp,
  arrived: readonly DownloadedPage[],
  maxKept: number,
): Promise<void> {
  const fresh = cu.fresh;
  // A resume compares every key with what is stored: entries, one by one.
  const pages = fresh ? arrived : arrived.map((p) => (isColumns(p) ? columnEntries(p) : p));
  const total = pages.reduce((n, p) => n + sizeOf(p), 0);
  if (total === 0) return;
  const mitt = b.mitt;
  const stored = fresh
    ? undefined
    : await ctx.storage.getEntries(
        b.name,
        pages.flatMap((p) => (p as readonly Entry[]).map((e) => e.key)),
      );
  const meta = { ...b.meta, sum: { ...b.meta.sum } };
  const puts: Entry[] = [];
  const columns: ColumnRange[] = [];
  const absent: string[] = [];
  let maxHlc = '';
  let at = 0;
  /** Decides one downloaded entry; true when it is applied. */
  const decide = (key: string, hlc: string, deleted: boolean, cur: Version | undefined): boolean => {
    if (hlc > maxHlc) maxHlc = hlc;
    const held = mitt?.newest(key);
    if (!downloadedWins(hlc, held, cur)) {
      // A held op beats the download and is applied later: until then storage has nothing
      // of this key, which the page's merged span alone would not tell (see `knownVersions`).
      if (fresh && cur === undefined && held !== undefined) absent.push(key);
      return false;
    }
    const version: Version = deleted ? { hlc, deleted: true } : { hlc };
    checksumReplace(meta.sum, key, cur, version);
    if (fresh && cur !== undefined) cu.kept.set(key, version);
    return true;
  };
  for (const page of pages) {
    if (!isColumns(page)) {
      for (const e of page) {
        if (e.seq > cu.dlMaxSeq) cu.dlMaxSeq = e.seq;
        const cur = fresh ? cu.kept.get(e.key) : stored?.[at];
        at++;
        if (decide(e.key, e.hlc, e.deleted === true, cur)) puts.push(e);
      }
      continue;
    }
    const c = page;
    const n = columnSize(c);
    if (n === 0) continue;
    for (let i = 0; i < n; i++) if ((c.seqs[i] as number) > cu.dlMaxSeq) cu.dlMaxSeq = c.seqs[i] as number;
    const top = maxHlcIn(c);
    if (top > maxHlc) maxHlc = top;
    // The keys that need a decision of their own (a fresh join: nothing is stored but `kept`).
    const special = new Set<number>();
    const first = keyAt(c, 0);
    const last = keyAt(c, n - 1);
    const find = (key: string) => {
      if (key < first || key > last) return;
      const i = indexIn(c, key);
      if (i >= 0) special.add(i);
    };
    if (mitt !== null) for (const key of mitt.heldKeys()) find(key);
    for (const key of cu.kept.keys()) find(key);
    const lost: number[] = [];
    for (const i of special) {
      const key = keyAt(c, i);
      if (!decide(key, hlcAt(c, i), isTombstoneIn(c, i), cu.kept.get(key))) lost.push(i);
    }
    for (let i = 0; i < n; i++) if (!special.has(i) && !isTombstoneIn(c, i)) checksumAddIn(meta.sum, c, i);
    // The page less the entries that lost, as ranges of it (a columnar store copies them once).
    let from = 0;
    for (const d of [...lost.sort((x, y) => x - y), n]) {
      if (d > from) columns.push({ c, from, to: d });
      from = d + 1;
    }
  }
  if (ctx.storage.columnar !== true) puts.push(...columns.splice(0).flatMap(rangeEntries));
  if (maxHlc !== '') ctx.clock.observe(maxHlc);
  await ctx.storage.commit({
    bucket: b.name,
    puts,
    ...(columns.length > 0 ? { columns } : {}),
    meta,
    clock: ctx.clock.last(),
  });
  b.meta = meta;
  if (cu.fresh && absent.length > 0 && b.catchUp === cu) {
    for (const k of absent) cu.kept.set(k, ABSENT);
    boundKept(cu, maxKept);
  }
  // Listeners get entries; a columnar page's are made only for a listener that wants them.
  ctx.emitChange(
    b.name,
    () => (columns.length === 0 ? puts : puts.concat(columns.flatMap(rangeEntries))),
    'remote',
  );
}
