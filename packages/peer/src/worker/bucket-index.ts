import type { Entry } from '@mittsync/core';
import { pageIndexOf } from './pages';

/**
 * What the store keeps in memory about one bucket: the sorted first keys of its pages and its
 * deltas. A delta is an entry newer than the copy in its page, kept with the page's other
 * deltas in one small record: a write touching a few keys of a page rewrites that record
 * instead of the page (hundreds of entries), and the page absorbs its deltas the next time it
 * is rewritten anyway or when it has {@link DELTA_LIMIT} of them. Random writes (typing, live ops applied after a join)
 * then cost a record each, and bulk writes still go to pages.
 *
 * Mutated only after a transaction completed (see {@link BucketIndex.apply}).
 */
export const DELTA_LIMIT = 32;

/** A bucket's page index and deltas (see above). */
export class BucketIndex {
  /** Delta keys by the first key of the page they belong to. */
  private readonly byPage = new Map<string, Set<string>>();

  constructor(
    public firsts: string[],
    readonly deltas: Map<string, Entry>,
  ) {
    for (const k of deltas.keys()) this.addKey(k);
  }

  /** First key of the page that holds `key` (`''` also for an empty bucket). */
  home(key: string): string {
    return this.firsts.length === 0
      ? ''
      : (this.firsts[Math.max(0, pageIndexOf(this.firsts, key))] as string);
  }

  private addKey(key: string): void {
    const home = this.home(key);
    const set = this.byPage.get(home);
    if (set === undefined) this.byPage.set(home, new Set([key]));
    else set.add(key);
  }

  deltaCount(first: string): number {
    return this.byPage.get(first)?.size ?? 0;
  }

  /** The page's deltas in key order. */
  deltasOf(first: string): Entry[] {
    const keys = this.byPage.get(first);
    if (keys === undefined) return [];
    const out: Entry[] = [];
    for (const k of keys) out.push(this.deltas.get(k) as Entry);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /** Records a committed transaction: folded pages lost their deltas, new deltas arrived. */
  apply(firsts: string[], folded: readonly string[], deltaPuts: readonly Entry[]): void {
    for (const f of folded) {
      for (const k of this.byPage.get(f) ?? []) this.deltas.delete(k);
      this.byPage.delete(f);
    }
    this.firsts = firsts;
    for (const e of deltaPuts) {
      if (!this.deltas.has(e.key)) this.addKey(e.key);
      this.deltas.set(e.key, e);
    }
  }
}
