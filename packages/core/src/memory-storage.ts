import { rangeEntries } from './columns';
import type { Entry, Op } from './model';
import { plainEntry } from './packed';
import { lowerBound } from './search';
import type { BucketMeta, ReplicaStorage, ScanQuery, StorageBatch, StoredIdentity } from './storage';

interface MemBucket {
  meta: BucketMeta | undefined;
  entries: Map<string, Entry>;
  sorted: string[] | null;
  outbox: Op[];
}

// Entries and ops are immutable once created by the core, so they are shared, not copied;
// meta records are mutable and are copied at the boundary.
function cloneMeta(m: BucketMeta): BucketMeta {
  return { ...m, sum: { ...m.sum } };
}

/**
 * A {@link ReplicaStorage} in memory. It deep-copies values at its boundary so a caller
 * can't mutate stored state by accident; `persistent` is false. The simulator keeps one
 * instance across a replica's "crash" to model storage surviving a process restart.
 */
export class MemoryReplicaStorage implements ReplicaStorage {
  readonly persistent = false;
  /** Takes column ranges (and keeps them as entries), as the browser store does. */
  readonly columnar = true;
  private identity: StoredIdentity | null = null;
  private readonly buckets = new Map<string, MemBucket>();
  /** Set to make the next commits fail (tests of storage trouble). */
  failNextCommits = 0;

  async open(): Promise<StoredIdentity | null> {
    return this.identity === null ? null : { ...this.identity };
  }

  async saveIdentity(identity: StoredIdentity): Promise<void> {
    this.identity = { ...identity };
  }

  private bucket(name: string): MemBucket {
    let b = this.buckets.get(name);
    if (b === undefined) {
      b = { meta: undefined, entries: new Map(), sorted: null, outbox: [] };
      this.buckets.set(name, b);
    }
    return b;
  }

  async listBuckets(): Promise<BucketMeta[]> {
    const out: BucketMeta[] = [];
    for (const b of this.buckets.values()) if (b.meta !== undefined) out.push(cloneMeta(b.meta));
    return out;
  }

  async loadBucket(bucket: string): Promise<BucketMeta | undefined> {
    const m = this.buckets.get(bucket)?.meta;
    return m === undefined ? undefined : cloneMeta(m);
  }

  async getEntries(bucket: string, keys: readonly string[]): Promise<(Entry | undefined)[]> {
    const b = this.buckets.get(bucket);
    return keys.map((k) => {
      return b?.entries.get(k);
    });
  }

  async scan(bucket: string, q: ScanQuery): Promise<Entry[]> {
    const b = this.buckets.get(bucket);
    if (b === undefined) return [];
    if (b.sorted === null) b.sorted = [...b.entries.keys()].sort();
    const keys = b.sorted;
    const start =
      q.prefix !== undefined && (q.start === undefined || q.prefix > q.start) ? q.prefix : q.start;
    let i = start === undefined ? 0 : lowerBound(keys, start);
    const limit = q.limit ?? Number.POSITIVE_INFINITY;
    const out: Entry[] = [];
    for (; i < keys.length && out.length < limit; i++) {
      const k = keys[i] as string;
      if (q.end !== undefined && k >= q.end) break;
      if (q.prefix !== undefined && !k.startsWith(q.prefix)) break;
      const e = b.entries.get(k);
      if (e !== undefined && (q.includeDeleted || !e.deleted)) out.push(e);
    }
    return out;
  }

  async loadOutbox(bucket: string): Promise<Op[]> {
    return (this.buckets.get(bucket)?.outbox ?? []).slice();
  }

  async commit(batch: StorageBatch): Promise<void> {
    if (this.failNextCommits > 0) {
      this.failNextCommits--;
      throw new Error('simulated storage failure');
    }
    const b = this.bucket(batch.bucket);
    for (const e of [...(batch.puts ?? []), ...(batch.columns ?? []).flatMap(rangeEntries)]) {
      if (!b.entries.has(e.key)) b.sorted = null;
      // A packed entry's value is decoded now: this store hands out what it keeps.
      b.entries.set(e.key, plainEntry(e));
    }
    if (batch.outboxReplace !== undefined) b.outbox = batch.outboxReplace.slice();
    if (batch.outboxAckUpTo !== undefined) {
      const upTo = batch.outboxAckUpTo;
      b.outbox = b.outbox.filter((op) => op.originSeq > upTo);
    }
    if (batch.outboxAdd !== undefined) for (const op of batch.outboxAdd) b.outbox.push(op);
    if (batch.meta !== undefined) b.meta = cloneMeta(batch.meta);
    if (batch.clock !== undefined && this.identity !== null) this.identity.clock = batch.clock;
  }

  async resetBucket(bucket: string, keep: readonly string[], meta: BucketMeta): Promise<void> {
    const b = this.bucket(bucket);
    const kept = new Map<string, Entry>();
    for (const k of keep) {
      const e = b.entries.get(k);
      if (e !== undefined) kept.set(k, e);
    }
    b.entries = kept;
    b.sorted = null;
    b.meta = cloneMeta(meta);
  }

  async close(): Promise<void> {}

  /** Synchronous view of a bucket's stored entries, tombstones included (tests, simulator). */
  peek(bucket: string): ReadonlyMap<string, Entry> {
    return this.buckets.get(bucket)?.entries ?? new Map();
  }

  /** Synchronous view of a bucket's meta and outbox (tests, simulator). */
  peekMeta(bucket: string): { meta: BucketMeta | undefined; outbox: readonly Op[] } {
    const b = this.buckets.get(bucket);
    return { meta: b?.meta, outbox: b?.outbox ?? [] };
  }

  /** Drops everything, as if the browser evicted the database (tests). */
  wipe(): void {
    this.identity = null;
    this.buckets.clear();
  }
}
