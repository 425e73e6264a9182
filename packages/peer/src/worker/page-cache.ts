import type { Page } from './pages';

/**
 * Decoded pages kept in memory (least recently used out first) plus each bucket's page index
 * (the sorted first keys of its pages). The store is the only writer of its database (it holds
 * a Web Lock on it), so the cache is updated on every committed transaction and never goes
 * stale; reads that raced a commit don't insert what they read (see {@link PageCache.version}).
 */
export class PageCache {
  private readonly pages = new Map<string, Page>();
  private readonly indexes = new Map<string, string[]>();
  private readonly versions = new Map<string, number>();

  constructor(private readonly maxPages: number) {}

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
    if (this.maxPages <= 0) return;
    const id = PageCache.id(bucket, page.first);
    this.pages.delete(id);
    this.pages.set(id, page);
    while (this.pages.size > this.maxPages) {
      const oldest = this.pages.keys().next().value as string;
      this.pages.delete(oldest);
    }
  }

  index(bucket: string): string[] | undefined {
    return this.indexes.get(bucket);
  }

  setIndex(bucket: string, firsts: string[], version: number): void {
    if (version === this.version(bucket)) this.indexes.set(bucket, firsts);
  }

  /** Records a committed change: `written` pages replace what was cached; `firsts` is the new index. */
  committed(bucket: string, written: readonly Page[], firsts: string[]): void {
    this.versions.set(bucket, this.version(bucket) + 1);
    this.indexes.set(bucket, firsts);
    for (const p of written) this.set(bucket, p);
  }

  /** Forgets a bucket's pages (after a reset). */
  dropBucket(bucket: string): void {
    const prefix = `${bucket}\u0000`;
    for (const id of [...this.pages.keys()]) if (id.startsWith(prefix)) this.pages.delete(id);
  }

  /** Forgets everything (after the database went away). */
  clear(): void {
    this.pages.clear();
    this.indexes.clear();
    for (const b of this.versions.keys()) this.versions.set(b, this.version(b) + 1);
  }
}
