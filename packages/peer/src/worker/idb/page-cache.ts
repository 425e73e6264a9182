import { type Page, sizeOf } from './pages';

/**
 * Decoded pages kept in memory (least recently used out first). The store is the only writer
 * of its database (it holds
 * a Web Lock on it), so the cache is updated on every committed transaction and never goes
 * stale; reads that raced a commit don't insert what they read (see {@link PageCache.version}).
 */
export class PageCache {
  private readonly pages = new Map<string, Page>();
  private readonly versions = new Map<string, number>();

  private entries = 0;

  /** Keeps at most `maxEntries` entries' worth of pages. */
  constructor(private readonly maxEntries: number) {}

  private static id(bucket: string, first: string): string {
    return `${bucket}\u0000${first}`;
  }

  /** Bumped by every commit of the bucket: a read started at another version must not cache. */
  version(bucket: string): number {
    return this.versions.get(bucket) ?? 0;
  }

  get(bucket: string, first: string): Page | undefined {
    const id = PageCache.id(bucket, first);
    const p = this.pages.get(id);
    if (p !== undefined) {
      this.pages.delete(id);
      this.pages.set(id, p);
    }
    return p;
  }

  /** Caches a page read at `version` (ignored if a commit happened since). */
  offer(bucket: string, page: Page, version: number): void {
    if (version === this.version(bucket)) this.set(bucket, page);
  }

  private set(bucket: string, page: Page): void {
    if (this.maxEntries <= 0) return;
    const id = PageCache.id(bucket, page.first);
    this.drop(id);
    this.pages.set(id, page);
    this.entries += sizeOf(page);
    while (this.entries > this.maxEntries && this.pages.size > 1) {
      this.drop(this.pages.keys().next().value as string);
    }
  }

  private drop(id: string): void {
    const old = this.pages.get(id);
    if (old === undefined) return;
    this.pages.delete(id);
    this.entries -= sizeOf(old);
  }

  /** Records a committed change: `written` pages replace what was cached. */
  committed(bucket: string, written: readonly Page[]): void {
    this.versions.set(bucket, this.version(bucket) + 1);
    for (const p of written) this.set(bucket, p);
  }

  /** Forgets a bucket's pages (after a reset). */
  dropBucket(bucket: string): void {
    const prefix = `${bucket}\u0000`;
    for (const id of [...this.pages.keys()]) if (id.startsWith(prefix)) this.drop(id);
  }

  /** Forgets everything (after the database went away). */
  clear(): void {
    this.pages.clear();
    this.entries = 0;
    for (const b of this.versions.keys()) this.versions.set(b, this.version(b) + 1);
  }
}
