import type {
  BucketMeta,
  Entry,
  Op,
  ReplicaStorage,
  ScanQuery,
  StorageBatch,
  StoredIdentity,
} from '@mittsync/core';
import { rangesSize } from '@mittsync/core/columns';
import { checksumOf, opToEntry } from '@mittsync/core/model';
import type { QuotaFault } from '../api';
import { mark } from '../marks';
import { toStorageError } from './errors';
import type { RescuedState } from './storage';

/** What the host wants to hear from its store (and, in tests, inject). */
export interface HostedStorageHooks {
  /** A bucket was reset (start of a re-join); `dropped` when entries other than `keep` went away. */
  onReset?(bucket: string, dropped: boolean): void;
  /** @internal Simulated quota exhaustion (tests). */
  faults?: QuotaFault;
}

/**
 * The store the host hands its replica: the real one (IndexedDB or memory) plus what the host
 * needs to see (bucket resets, so live queries can be re-snapshotted) and, in tests, injected
 * quota failures that go through the same error mapping as real ones.
 */
export class HostedStorage implements ReplicaStorage {
  private commits = 0;

  constructor(
    readonly inner: ReplicaStorage,
    private readonly hooks: HostedStorageHooks = {},
  ) {}

  get persistent(): boolean {
    return this.inner.persistent;
  }

  get columnar(): boolean {
    return this.inner.columnar === true;
  }

  open(): Promise<StoredIdentity | null> {
    return this.inner.open();
  }
  saveIdentity(identity: StoredIdentity): Promise<void> {
    return this.inner.saveIdentity(identity);
  }
  listBuckets(): Promise<BucketMeta[]> {
    return this.inner.listBuckets();
  }
  loadBucket(bucket: string): Promise<BucketMeta | undefined> {
    return this.inner.loadBucket(bucket);
  }
  getEntries(bucket: string, keys: readonly string[]): Promise<(Entry | undefined)[]> {
    return this.inner.getEntries(bucket, keys);
  }
  scan(bucket: string, query: ScanQuery): Promise<Entry[]> {
    return this.inner.scan(bucket, query);
  }
  loadOutbox(bucket: string): Promise<Op[]> {
    return this.inner.loadOutbox(bucket);
  }

  async commit(batch: StorageBatch): Promise<void> {
    const f = this.hooks.faults;
    const puts = (batch.puts?.length ?? 0) + rangesSize(batch.columns ?? []);
    if (f !== undefined && puts >= f.minPuts) {
      this.commits++;
      if (this.commits > f.skip && this.commits <= f.skip + f.times)
        throw toStorageError(new DOMException('simulated quota exhaustion', 'QuotaExceededError'), 'commit');
    }
    const data = puts > 0;
    if (data) mark('first data commit start');
    await this.inner.commit(batch);
    if (data) mark('first data commit done');
  }

  async resetBucket(bucket: string, keep: readonly string[], meta: BucketMeta): Promise<void> {
    const before = await this.inner.scan(bucket, { limit: keep.length + 1, includeDeleted: true });
    const kept = new Set(keep);
    const dropped = before.some((e) => !kept.has(e.key));
    await this.inner.resetBucket(bucket, keep, meta);
    this.hooks.onReset?.(bucket, dropped);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/**
 * Seeds a fresh store with what a lost one's replica still knew: its identity and clock, each
 * bucket's counters (not ready, so it re-joins) and its unacknowledged local writes with the
 * entries they produced. The replica then re-joins under the same identity and re-pushes those
 * writes with their original originSeqs (the relay dedupes); nothing is pushed as a deletion.
 */
export async function seedRescued(storage: ReplicaStorage, rescued: RescuedState): Promise<void> {
  await storage.open();
  await storage.saveIdentity(rescued.identity);
  for (const { meta, outbox } of rescued.buckets) {
    const newest = new Map<string, Entry>();
    for (const op of outbox) newest.set(op.key, opToEntry(op, 0));
    const puts = [...newest.values()];
    await storage.commit({
      bucket: meta.bucket,
      puts,
      outboxReplace: outbox,
      meta: { ...meta, epoch: null, checkpoint: 0, ready: false, sum: checksumOf(puts) },
    });
  }
}
