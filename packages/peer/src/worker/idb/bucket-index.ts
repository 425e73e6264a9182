import type { Entry } from '@mittsync/core';
import { keyOrder } from '@mittsync/core/model';
import { pageIndexOf } from './pages';

/**
 * What the store keeps in memory about one bucket: the sorted first keys of its pages and its
 * deltas. A delta is an entry newer than the copy in its page: a write touching a few keys of
 * a page writes them as deltas instead of rewriting the page (hundreds of entries), and the
 * page absorbs its deltas the next time it is rewritten anyway or when it has
 * {@link DELTA_LIMIT} of them. Random writes (typing, live ops applied after a join) then cost
 * little, and bulk writes still go to pages.
 *
 * Deltas are stored in records that each serve a run of up to {@link DELTA_GROUP_PAGES}
 * neighbouring pages, keyed by the first key of the run's first page when the record was
 * made. Every IndexedDB record costs a fixed ~0.1-0.3 ms to write on top of its bytes, so a
 * batch of 1,000 live ops spread over a 100,000-key bucket writes ~35 records instead of
 * ~270. A delta stays in the record it was first written to until its page absorbs it (pages
 * split and the runs shift, so {@link recordFor} remembers where each key's delta is).
 *
 * Mutated only after a transaction completed (see {@link BucketIndex.apply}).
 */
export const DELTA_LIMIT = 32;

/** Pages per delta record (at most this times {@link DELTA_LIMIT} deltas in one record). */
export const DELTA_GROUP_PAGES = 8;

/** A bucket's page index and deltas (see above). */
export class BucketIndex {
  /** Delta keys by the first key of the page they belong to. */
  private readonly byPage = new Map<string, Set<string>>();
  /** Delta keys by the record that stores them, and the record of each delta key. */
  private readonly byRecord = new Map<string, Set<string>>();
  private readonly where = new Map<string, string>();

  /** `records`: the record (its key's first-key part) each delta was loaded from. */
  constructor(
    public firsts: string[],
    readonly deltas: Map<string, Entry>,
    records: ReadonlyMap<string, string> = new Map(),
  ) {
    for (const k of deltas.keys()) this.addKey(k, records.get(k) ?? this.home(k));
  }

  /** First key of the page that holds `key` (`''` also for an empty bucket). */
  home(key: string): string {
    return this.firsts.length === 0
      ? ''
      : (this.firsts[Math.max(0, pageIndexOf(this.firsts, key))] as string);
  }

  private addKey(key: string, record: string): void {
    add(this.byPage, this.home(key), key);
    add(this.byRecord, record, key);
    this.where.set(key, record);
  }

  deltaCount(first: string): number {
    return this.byPage.get(first)?.size ?? 0;
  }

  /** The page's deltas in key order. */
  deltasOf(first: string): Entry[] {
    return this.entries(this.byPage.get(first));
  }

  /** The deltas stored in record `record`, in key order. */
  deltasIn(record: string): Entry[] {
    return this.entries(this.byRecord.get(record));
  }

  private entries(keys: ReadonlySet<string> | undefined): Entry[] {
    if (keys === undefined) return [];
    const out: Entry[] = [];
    for (const k of keys) out.push(this.deltas.get(k) as Entry);
    return out.sort(keyOrder);
  }

  /** The record a new delta of `key` (whose page starts at `home`) goes to. */
  recordFor(key: string, home: string): string {
    const known = this.where.get(key);
    if (known !== undefined) return known;
    const i = Math.max(0, pageIndexOf(this.firsts, home));
    return this.firsts[i - (i % DELTA_GROUP_PAGES)] ?? home;
  }

  /** The record holding `key`'s delta, if it has one. */
  recordOf(key: string): string | undefined {
    return this.where.get(key);
  }

  /**
   * Records a committed transaction: folded pages lost their deltas, new deltas arrived
   * (`records` says which record each went to).
   */
  apply(
    firsts: string[],
    folded: readonly string[],
    deltaPuts: readonly Entry[],
    records: ReadonlyMap<string, string>,
  ): void {
    for (const f of folded) {
      for (const k of this.byPage.get(f) ?? []) {
        this.deltas.delete(k);
        const r = this.where.get(k) as string;
        this.where.delete(k);
        const set = this.byRecord.get(r);
        set?.delete(k);
        if (set?.size === 0) this.byRecord.delete(r);
      }
      this.byPage.delete(f);
    }
    // A page that split was folded, so it has no deltas: every delta's home stays the same.
    this.firsts = firsts;
    for (const e of deltaPuts) {
      if (!this.deltas.has(e.key)) this.addKey(e.key, records.get(e.key) ?? this.home(e.key));
      this.deltas.set(e.key, e);
    }
  }
}

function add(map: Map<string, Set<string>>, at: string, key: string): void {
  const set = map.get(at);
  if (set === undefined) map.set(at, new Set([key]));
  else set.add(key);
}
