import type { Change } from '@mittsync/peer';

function byKey(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** First index in sorted `keys` whose key is >= `key`. */
function lowerBound(keys: readonly string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((keys[mid] as string) < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * What the table shows: every row of a live query, with random access by position (the
 * virtualized table asks for rows 41,200 to 41,240). Keys stay sorted; a batch of many new
 * keys (a page of a join) is merged in one pass instead of one splice per key.
 */
export class TableModel<T> {
  private keys: string[] = [];
  private readonly values = new Map<string, T>();
  /** When each key last changed by a live write of another tab or device (the table flashes those rows). */
  private readonly touched = new Map<string, number>();
  /** Bumped on every change, so views know when to redraw. */
  version = 0;
  /** True once the live query's initial result arrived. */
  loaded = false;
  private readonly listeners = new Set<() => void>();

  /** Called after each applied delivery. */
  onApply(l: () => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  get size(): number {
    return this.keys.length;
  }

  keyAt(i: number): string | undefined {
    return this.keys[i];
  }

  get(key: string): T | undefined {
    return this.values.get(key);
  }

  /** Position of the first key >= `key` (where `key` is or would be). */
  position(key: string): number {
    return lowerBound(this.keys, key);
  }

  indexOf(key: string): number {
    const i = lowerBound(this.keys, key);
    return this.keys[i] === key ? i : -1;
  }

  touchedAt(key: string): number | undefined {
    return this.touched.get(key);
  }

  /** Every (key, value) pair, for digests. */
  entries(): IterableIterator<[string, T]> {
    return this.values.entries();
  }

  /**
   * Applies one delivery of a live query; an `initial` delivery replaces everything. `live`
   * says whether its remote changes are live writes, which flash, rather than rows a join or
   * resume downloaded, which arrive as remote changes too and would make the table blink.
   */
  apply(initial: boolean, changes: readonly Change<T>[], live: boolean, now = performance.now()): void {
    if (initial) {
      this.values.clear();
      this.touched.clear();
      this.keys = [];
    }
    const added: string[] = [];
    let removed = 0;
    const flash = live && !initial;
    for (const c of changes) {
      const had = this.values.has(c.key);
      if (c.deleted) {
        if (had) {
          this.values.delete(c.key);
          removed++;
        }
        this.touched.delete(c.key);
        continue;
      }
      this.values.set(c.key, c.value as T);
      if (!had) added.push(c.key);
      if (flash && c.source === 'remote') this.touched.set(c.key, now);
    }
    if (removed > 0) this.keys = this.keys.filter((k) => this.values.has(k));
    if (added.length > 0) this.insert(added);
    this.version++;
    if (initial) this.loaded = true;
    for (const l of this.listeners) l();
  }

  private insert(added: string[]): void {
    if (added.length < 32) {
      for (const k of added) this.keys.splice(lowerBound(this.keys, k), 0, k);
      return;
    }
    added.sort(byKey);
    const old = this.keys;
    const out: string[] = new Array(old.length + added.length);
    let i = 0;
    let j = 0;
    let o = 0;
    while (i < old.length && j < added.length) {
      out[o++] = (old[i] as string) < (added[j] as string) ? (old[i++] as string) : (added[j++] as string);
    }
    while (i < old.length) out[o++] = old[i++] as string;
    while (j < added.length) out[o++] = added[j++] as string;
    this.keys = out;
  }

  /** Forgets flashes older than `ms`. */
  expireTouches(now: number, ms: number): void {
    for (const [k, t] of this.touched) if (now - t > ms) this.touched.delete(k);
  }
}
