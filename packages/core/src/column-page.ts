import { type EntryColumns, packColumns } from './columns';
import type { HostStore } from './host-store';
import type { PageReqMsg } from './protocol';
import { textAt } from './utf8';

/** What a page entry costs besides its key, version and value (as `pageEntryBytes` counts). */
const ENTRY_BYTES = 24;
/** The fewest entries a bulk read asks for. */
const MIN_READ = 64;
/** A bulk read asks for this much more than the byte budget holds at the mean entry size. */
const OVER_READ = 1.25;
/** Values more than this many times the mean go the per-entry way (the read stays bounded). */
const VALUE_SPREAD = 4;

/**
 * The mean bytes of an entry in a bucket's pages, learnt from the pages it served: how many
 * entries a bulk read asks for, so that a page's byte budget is met without reading much more.
 */
export class PageSizer {
  mean: number | undefined;

  learn(bytes: number, entries: number): void {
    if (entries > 0) this.mean = bytes / entries;
  }
}

/**
 * A page as columns read in bulk ({@link HostStore.pageColumns}): the same entries the
 * per-entry read gives, up to `limit` and ending at the first entry past `budget` bytes, but
 * with no object per entry, which is most of what a catch-up costs a relay. Undefined when the
 * store has no bulk read, nothing was learnt about the bucket's entry size yet, or the store
 * cannot read this range in bulk: the caller then reads entry by entry.
 *
 * A bulk read asks for {@link OVER_READ} times what the budget holds at the mean size, values
 * of at most {@link VALUE_SPREAD} times the mean (a range of larger ones goes entry by entry),
 * so a read holds a few budgets at most, whatever the bucket's values.
 */
export function readColumnPage(
  store: HostStore,
  req: PageReqMsg,
  limit: number,
  budget: number,
  sizer: PageSizer,
): { cols: EntryColumns; next: string | null } | undefined {
  const mean = sizer.mean;
  if (store.pageColumns === undefined || mean === undefined) return undefined;
  const want = Number.isFinite(budget)
    ? Math.min(limit, Math.max(MIN_READ, Math.ceil((OVER_READ * budget) / mean) + 1))
    : limit;
  const got = store.pageColumns(req.since, req.after, req.until, want, Math.ceil(VALUE_SPREAD * mean) + 64);
  if (got === undefined) return undefined;
  let bytes = 0;
  let count = got.n;
  let cut = false;
  let val = 0;
  for (let i = 0; i < got.n; i++) {
    const end = got.valEnds[i] as number;
    // A tombstone has no value bytes and counts one, as in a page of entries.
    bytes += (end === val ? 1 : end - val) + ENTRY_BYTES;
    val = end;
    if (!cut && bytes + (got.keyEnds[i] as number) + (got.hlcEnds[i] as number) > budget) {
      count = i + 1;
      cut = true;
    }
  }
  if (got.n > 0)
    sizer.learn(bytes + (got.keyEnds[got.n - 1] as number) + (got.hlcEnds[got.n - 1] as number), got.n);
  const cols = packColumns(got, count);
  const full = cut || got.n >= want;
  const lastKey =
    count === 0
      ? undefined
      : textAt(
          cols.keyBytes,
          count === 1 ? 0 : (cols.keyEnds[count - 2] as number),
          cols.keyEnds[count - 1] as number,
        );
  return { cols, next: full && lastKey !== undefined && lastKey !== req.until ? lastKey : null };
}
