import type {
  BucketMeta,
  ColumnRange,
  Entry,
  MittsyncError,
  Op,
  ReplicaStorage,
  ScanQuery,
  StorageBatch,
  StoredIdentity,
} from '@mittsync/core';
import {
  columnSize,
  columnsOf,
  keyAt,
  lowerBound,
  plainEntry,
  rangeEntries,
  rangesSize,
} from '@mittsync/core/columns';
import { keyOrder } from '@mittsync/core/model';
import type { StorageStats } from '../api';
import { mark } from '../marks';
import { BucketIndex } from './bucket-index';
import { type Db, IdbConnection, type RwTx, type StoreName } from './connection';
import { PageCache } from './page-cache';
import { writeEntries } from './page-writer';
import {
  emptyPage,
  entryAt,
  findInPage,
  isTombstoneAt,
  mergeIntoPage,
  type Page,
  type PageRecord,
  pageFromRecord,
  pageIndexOf,
  pageOf,
  plainEntryAt,
  recordOf,
  splitPage,
} from './pages';

/** Options of {@link IdbReplicaStorage}. */
export interface IdbStorageOptions {
  /** Database name (default `mittsync`). One database holds every bucket of the replica. */
  name?: string;
  /**
   * `auto` (default): commits holding local writes (outbox changes) and the identity use
   * `strict` durability, everything re-fetchable from the relay uses `relaxed` (a power cut
   * loses at most some catch-up progress, together with the checkpoint that covered it, since
   * both are in one transaction). `strict`: every commit waits for the disk.
   */
  durability?: 'auto' | 'strict';
  /** Entries of decoded pages kept in memory (default 131,072: some tens of MB). */
  cacheEntries?: number;
  /** Called once when the database was deleted or evicted underneath (see {@link IdbReplicaStorage.lost}). */
  onLost?: (err: MittsyncError) => void;
  /** Hold a Web Lock on the database while open, so only one store writes it (default true where available). */
  exclusive?: boolean;
}

/** Everything a wiped store's replica still knows in memory, to re-join without losing local writes. */
export interface RescuedState {
  identity: StoredIdentity;
  buckets: { meta: BucketMeta; outbox: Op[] }[];
}

const pageRange = (bucket: string) => IDBKeyRange.bound([bucket, ''], [bucket, []]);
/** Most ops in one outbox record: an ack that covers part of a run rewrites at most this many. */
const OUTBOX_RUN = 2048;
const outboxRange = (bucket: string, upTo = Number.POSITIVE_INFINITY) =>
  IDBKeyRange.bound([bucket, Number.NEGATIVE_INFINITY], [bucket, upTo]);

/**
 * A {@link ReplicaStorage} on IndexedDB (through idb): entries packed into key-range pages
 * (see `pages.ts`), the outbox and bucket meta in the same database, and every batch one
 * transaction that resolves on `complete`. It reopens once after a lost connection, reports a
 * database deleted or evicted underneath as `STORAGE_LOST` (never as an empty bucket), and a
 * full disk as `STORAGE_QUOTA` with nothing of the batch applied.
 *
 * @example
 * ```ts
 * const storage = new IdbReplicaStorage({ name: 'my-app' });
 * const replica = await Replica.open({ storage, transport });
 * ```
 */
export class IdbReplicaStorage implements ReplicaStorage {
  readonly persistent = true;
  /** Bulk downloads come by column and are cut into pages as they are (see page-writer.ts). */
  readonly columnar = true;
  readonly name: string;
  private readonly opts: IdbStorageOptions;
  private readonly conn: IdbConnection;
  private identity: StoredIdentity | null = null;
  private readonly cache: PageCache;
  private readonly indexes = new Map<string, BucketIndex>();
  private readonly indexLoads = new Map<string, Promise<BucketIndex>>();
  private readonly metas = new Map<string, BucketMeta>();
  private readonly outboxes = new Map<string, Op[]>();
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** Counters for benchmarks. */
  readonly stats: StorageStats = { commits: 0, entries: 0, commitMs: 0, pageRecords: 0, pageEntries: 0 };

  constructor(opts: IdbStorageOptions = {}) {
    this.opts = opts;
    this.name = opts.name ?? 'mittsync';
    this.cache = new PageCache(opts.cacheEntries ?? 131_072);
    this.conn = new IdbConnection({
      name: this.name,
      exclusive: opts.exclusive !== false,
      ...(opts.onLost === undefined ? {} : { onLost: opts.onLost }),
      onDrop: () => {
        this.cache.clear();
        this.indexes.clear();
        this.indexLoads.clear();
      },
      hasIdentity: () => this.identity !== null,
    });
  }

  /** The error the store failed with for good (database deleted or evicted), if any. */
  get lost(): MittsyncError | null {
    return this.conn.lost;
  }

  private run<T>(what: string, fn: (db: Db) => Promise<T>): Promise<T> {
    return this.conn.run(what, fn);
  }

  /** Runs writes one at a time, in call order (the cache reflects each committed one). */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const r = this.queue.then(fn, fn);
    this.queue = r.catch(() => undefined);
    return r;
  }

  async open(): Promise<StoredIdentity | null> {
    const found = await this.run('open', (db) => db.get('identity', 'self'));
    this.identity = found ?? null;
    return found === undefined ? null : { ...found };
  }

  async saveIdentity(identity: StoredIdentity): Promise<void> {
    await this.serial(() =>
      this.run('saveIdentity', async (db) => {
        await db.put('identity', { ...identity }, 'self');
      }),
    );
    this.identity = { ...identity };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.queue;
    this.closed = true;
    this.conn.close();
  }

  // -----------------------------------------------------------------------------------------
  // Reads
  // -----------------------------------------------------------------------------------------

  async listBuckets(): Promise<BucketMeta[]> {
    const all = await this.run('listBuckets', (db) => db.getAll('buckets'));
    for (const m of all) {
      this.metas.set(m.bucket, m);
      // Warm the page index now, while the replica is still starting: first queries need it.
      void this.bucketIndex(m.bucket).catch(() => undefined);
    }
    return all;
  }

  async loadBucket(bucket: string): Promise<BucketMeta | undefined> {
    // The page index too, while the replica connects: a join's first commit needs it (even
    // for a new bucket, where loading it finds nothing: ~25 ms less before the first page).
    void this.bucketIndex(bucket).catch(() => undefined);
    const m = await this.run('loadBucket', (db) => db.get('buckets', bucket));
    if (m !== undefined) this.metas.set(bucket, m);
    return m;
  }

  async loadOutbox(bucket: string): Promise<Op[]> {
    const runs = await this.run('loadOutbox', (db) => db.getAll('outbox', outboxRange(bucket)));
    const ops = runs.flat().sort((a, b) => a.originSeq - b.originSeq);
    this.outboxes.set(bucket, ops.slice());
    return ops;
  }

  /** The bucket's page index and deltas (loaded once, then kept up to date by commits). */
  private bucketIndex(bucket: string): Promise<BucketIndex> {
    const known = this.indexes.get(bucket);
    if (known !== undefined) return Promise.resolve(known);
    let p = this.indexLoads.get(bucket);
    if (p === undefined) {
      p = this.run('load index', async (db) => {
        const tx = db.transaction(['pageIndex', 'pages', 'deltas'], 'readonly');
        const range = pageRange(bucket);
        const [stored, deltas, deltaKeys] = await Promise.all([
          tx.objectStore('pageIndex').get(bucket),
          tx.objectStore('deltas').getAll(range),
          tx.objectStore('deltas').getAllKeys(range),
        ]);
        // A bucket with no index record has no pages (every commit that adds one writes it).
        const byKey = new Map<string, Entry>();
        const records = new Map<string, string>();
        deltas.forEach((rec, r) => {
          const record = (deltaKeys[r] as [string, string])[1];
          const page = pageFromRecord(record, rec);
          for (let i = 0; i < page.keys.length; i++) {
            byKey.set(page.keys[i] as string, entryAt(page, i));
            records.set(page.keys[i] as string, record);
          }
        });
        const index = new BucketIndex(stored ?? [], byKey, records);
        // Commits load the index first and are serialized, so none can have changed it meanwhile.
        this.indexes.set(bucket, index);
        mark('page index');
        return index;
      });
      this.indexLoads.set(bucket, p);
      const clear = () => this.indexLoads.delete(bucket);
      p.then(clear, clear);
    }
    return p;
  }

  /** Loads pages by first key: cached ones from memory, the rest in one transaction. */
  private async loadPages(
    bucket: string,
    firsts: readonly string[],
    order?: readonly string[],
  ): Promise<Map<string, Page>> {
    const out = new Map<string, Page>();
    const missing: string[] = [];
    for (const f of firsts) {
      const p = this.cache.get(bucket, f);
      if (p === undefined) missing.push(f);
      else out.set(f, p);
    }
    if (missing.length === 0) return out;
    const version = this.cache.version(bucket);
    const recs = await this.run('read', async (db) => {
      const store = db.transaction('pages', 'readonly').store;
      const runs = order === undefined ? missing.map((f) => [f]) : contiguousRuns(missing, order);
      const loaded = await Promise.all(
        runs.map(async (run): Promise<(PageRecord | undefined)[]> => {
          if (run.length === 1) return [await store.get([bucket, run[0] as string])];
          // Neighbouring pages in one request: much cheaper than one get each.
          const range = IDBKeyRange.bound(
            [bucket, run[0] as string],
            [bucket, run[run.length - 1] as string],
          );
          const all = await store.getAll(range);
          if (all.length === run.length) return all;
          return Promise.all(run.map((f) => store.get([bucket, f])));
        }),
      );
      const byFirst = new Map<string, PageRecord | undefined>();
      runs.forEach((run, i) => {
        run.forEach((f, j) => {
          byFirst.set(f, loaded[i]?.[j]);
        });
      });
      return missing.map((f) => byFirst.get(f));
    });
    missing.forEach((f, i) => {
      const rec = recs[i];
      const page = rec === undefined ? emptyPage(f) : pageFromRecord(f, rec);
      out.set(f, page);
      this.cache.offer(bucket, page, version);
    });
    return out;
  }

  /**
   * Loads pages and the index consistently: a commit that completes while pages load changes
   * both, so the load is repeated (the index and the cache change together, synchronously).
   */
  private async snapshot(bucket: string, firstsOf: (index: BucketIndex) => string[]) {
    for (let attempt = 0; ; attempt++) {
      const version = this.cache.version(bucket);
      const index = await this.bucketIndex(bucket);
      const firsts = firstsOf(index);
      const pages = await this.loadPages(bucket, firsts, index.firsts);
      if (version === this.cache.version(bucket) || attempt >= 3) return { index, pages, firsts };
    }
  }

  async getEntries(bucket: string, keys: readonly string[]): Promise<(Entry | undefined)[]> {
    if (keys.length === 0) return [];
    const { index, pages } = await this.snapshot(bucket, (index) =>
      index.firsts.length === 0
        ? []
        : [...new Set(keys.filter((k) => !index.deltas.has(k)).map((k) => index.home(k)))],
    );
    return keys.map((k) => {
      const d = index.deltas.get(k);
      if (d !== undefined) return plainEntry(d);
      const page = pages.get(index.home(k));
      const i = page === undefined ? -1 : findInPage(page, k);
      return page === undefined || i < 0 ? undefined : plainEntryAt(page, i);
    });
  }

  async scan(bucket: string, q: ScanQuery): Promise<Entry[]> {
    const limit = q.limit ?? Number.POSITIVE_INFINITY;
    const out: Entry[] = [];
    if (limit <= 0) return out;
    const start =
      q.prefix !== undefined && (q.start === undefined || q.prefix > q.start) ? q.prefix : q.start;
    // Pages arrive in chunks: small for a limited scan, bigger for a full one.
    let chunk = limit < 256 ? 1 : 16;
    let from = start;
    for (;;) {
      const { index, pages, firsts } = await this.snapshot(bucket, (index) => {
        const all = index.firsts;
        const i = from === undefined ? 0 : Math.max(0, pageIndexOf(all, from));
        return all.slice(i, i + chunk);
      });
      if (firsts.length === 0) return out;
      for (const f of firsts) {
        const own = index.deltasOf(f);
        const stored = pages.get(f) as Page;
        const page = own.length === 0 ? stored : mergeIntoPage(stored, own);
        let j = from === undefined ? 0 : lowerBound(page.keys, from);
        for (; j < page.keys.length; j++) {
          const key = page.keys[j] as string;
          if (q.end !== undefined && key >= q.end) return out;
          if (q.prefix !== undefined && !key.startsWith(q.prefix)) {
            if (key > q.prefix) return out;
            continue;
          }
          if (!q.includeDeleted && isTombstoneAt(page, j)) continue;
          out.push(plainEntryAt(page, j));
          if (out.length >= limit) return out;
        }
      }
      // Continue after the last page of this chunk.
      const last = firsts[firsts.length - 1] as string;
      const next = index.firsts[pageIndexOf(index.firsts, last) + 1];
      if (next === undefined) return out;
      from = from === undefined || next > from ? next : from;
      chunk = Math.min(chunk * 2, 64);
    }
  }

  // -----------------------------------------------------------------------------------------
  // Writes
  // -----------------------------------------------------------------------------------------

  commit(batch: StorageBatch): Promise<void> {
    return this.serial(() => this.commitNow(batch));
  }

  private durability(batch: StorageBatch): 'strict' | 'relaxed' {
    if (this.opts.durability === 'strict') return 'strict';
    const local = (batch.outboxAdd?.length ?? 0) > 0 || batch.outboxReplace !== undefined;
    return local ? 'strict' : 'relaxed';
  }

  private async commitNow(batch: StorageBatch): Promise<void> {
    const t0 = performance.now();
    const { bucket } = batch;
    const runs = runsOf(batch);
    const count = rangesSize(runs);
    const index = count > 0 ? await this.bucketIndex(bucket) : undefined;
    let plan: Awaited<ReturnType<typeof writeEntries>> | undefined;
    await this.run('commit', async (db) => {
      const tx = db.transaction(storesOf(batch, index !== undefined), 'readwrite', {
        durability: this.durability(batch),
      }) as unknown as RwTx;
      try {
        if (index !== undefined) {
          plan = await writeEntries(
            tx.objectStore('pages'),
            tx.objectStore('deltas'),
            bucket,
            index,
            this.cache,
            runs,
          );
        }
        if (plan !== undefined && index !== undefined && plan.firsts !== index.firsts)
          void tx
            .objectStore('pageIndex')
            .put(plan.firsts, bucket)
            .catch(() => undefined);
        await this.writeRest(tx, batch);
      } catch (e) {
        abortQuietly(tx);
        throw e;
      }
      await tx.done;
    });
    // Committed: now (and only now) the memory views follow, all in one synchronous step.
    if (index !== undefined && plan !== undefined) {
      index.apply(plan.firsts, plan.folded, plan.deltaPuts, plan.deltaRecords);
      this.cache.committed(bucket, plan.written);
      this.stats.pageRecords += plan.written.length;
      for (const p of plan.written) this.stats.pageEntries += p.keys.length;
    }
    this.afterCommit(batch);
    this.stats.commits++;
    this.stats.entries += count;
    this.stats.commitMs += performance.now() - t0;
  }

  /**
   * Everything of `batch` but entries. The outbox holds runs of ops (see `connection.ts`),
   * each keyed by its last `originSeq`: a commit's local writes are one record or a few (of at
   * most {@link OUTBOX_RUN} ops), not one per op (a 1,000-key transaction spent about half its
   * worker time in those puts), and an ack deletes the runs it covers by key range. A run an
   * ack covers only in part is read back and rewritten without the acknowledged ops.
   */
  private async writeRest(tx: RwTx, batch: StorageBatch): Promise<void> {
    const { bucket } = batch;
    const quiet = (p: Promise<unknown>) => void p.catch(() => undefined);
    if (touchesOutbox(batch)) {
      const outbox = tx.objectStore('outbox');
      const putRuns = (ops: readonly Op[]) => {
        const sorted = ops.slice().sort((a, b) => a.originSeq - b.originSeq);
        for (let at = 0; at < sorted.length; at += OUTBOX_RUN) {
          const run = sorted.slice(at, at + OUTBOX_RUN);
          quiet(outbox.put(run, [bucket, (run[run.length - 1] as Op).originSeq]));
        }
      };
      if (batch.outboxReplace !== undefined) {
        quiet(outbox.delete(outboxRange(bucket)));
        putRuns(batch.outboxReplace);
      }
      const upTo = batch.outboxAckUpTo;
      if (upTo !== undefined) {
        quiet(outbox.delete(outboxRange(bucket, upTo)));
        // The next run may still hold acknowledged ops (it ends after `upTo`).
        const after = IDBKeyRange.bound([bucket, upTo], [bucket, Number.POSITIVE_INFINITY], true);
        const cursor = await outbox.openCursor(after);
        const run = cursor?.value;
        if (cursor != null && Array.isArray(run) && run.some((op) => op.originSeq <= upTo))
          await cursor.update(run.filter((op) => op.originSeq > upTo));
      }
      if (batch.outboxAdd !== undefined && batch.outboxAdd.length > 0) putRuns(batch.outboxAdd);
    }
    if (batch.meta !== undefined) quiet(tx.objectStore('buckets').put(batch.meta));
    if (batch.clock !== undefined && this.identity !== null) {
      quiet(tx.objectStore('identity').put({ ...this.identity, clock: batch.clock }, 'self'));
    }
  }

  /** Keeps the in-memory mirror of meta and outbox (what {@link rescue} hands over) in step. */
  private afterCommit(batch: StorageBatch): void {
    const { bucket } = batch;
    let ob = this.outboxes.get(bucket) ?? [];
    if (batch.outboxReplace !== undefined) ob = batch.outboxReplace.slice();
    if (batch.outboxAckUpTo !== undefined) {
      const upTo = batch.outboxAckUpTo;
      ob = ob.filter((op) => op.originSeq > upTo);
    }
    if (batch.outboxAdd !== undefined) ob = ob.concat(batch.outboxAdd);
    this.outboxes.set(bucket, ob);
    if (batch.meta !== undefined) this.metas.set(bucket, batch.meta);
    if (batch.clock !== undefined && this.identity !== null)
      this.identity = { ...this.identity, clock: batch.clock };
  }

  resetBucket(bucket: string, keep: readonly string[], meta: BucketMeta): Promise<void> {
    return this.serial(async () => {
      const kept = (await this.getEntries(bucket, keep)).filter((e): e is Entry => e !== undefined);
      kept.sort(keyOrder);
      const pages = kept.length === 0 ? [] : splitPage(pageOf('', kept));
      await this.run('resetBucket', async (db) => {
        const tx = db.transaction(['pages', 'deltas', 'pageIndex', 'buckets'], 'readwrite', {
          durability: 'relaxed',
        });
        const quiet = (p: Promise<unknown>) => void p.catch(() => undefined);
        const store = tx.objectStore('pages');
        quiet(store.delete(pageRange(bucket)));
        quiet(tx.objectStore('deltas').delete(pageRange(bucket)));
        quiet(
          tx.objectStore('pageIndex').put(
            pages.map((p) => p.first),
            bucket,
          ),
        );
        for (const p of pages) quiet(store.put(recordOf(p), [bucket, p.first]));
        quiet(tx.objectStore('buckets').put(meta));
        await tx.done;
      });
      this.cache.dropBucket(bucket);
      this.indexes.set(
        bucket,
        new BucketIndex(
          pages.map((p) => p.first),
          new Map(),
        ),
      );
      this.cache.committed(bucket, pages);
      this.metas.set(bucket, meta);
    });
  }

  /**
   * What this store's replica had (identity, bucket counters, unacknowledged local writes),
   * from memory: after `STORAGE_LOST`, a fresh store seeded with it lets the replica re-join
   * under the same identity and still push every write it acknowledged locally.
   */
  rescue(): RescuedState | null {
    if (this.identity === null) return null;
    return {
      identity: { ...this.identity },
      buckets: [...this.metas.values()].map((meta) => ({
        meta,
        outbox: (this.outboxes.get(meta.bucket) ?? []).slice(),
      })),
    };
  }
}

function touchesOutbox(batch: StorageBatch): boolean {
  return (
    batch.outboxReplace !== undefined ||
    batch.outboxAckUpTo !== undefined ||
    (batch.outboxAdd?.length ?? 0) > 0
  );
}

/**
 * The stores a batch writes: a transaction locks only those, so reads of pages don't wait
 * behind a commit that only moves meta or the outbox.
 */
function storesOf(batch: StorageBatch, entries: boolean): StoreName[] {
  const stores: StoreName[] = [];
  if (entries) stores.push('pages', 'deltas', 'pageIndex');
  if (touchesOutbox(batch)) stores.push('outbox');
  if (batch.meta !== undefined) stores.push('buckets');
  if (batch.clock !== undefined) stores.push('identity');
  return stores.length === 0 ? ['buckets'] : stores;
}

/** Splits `firsts` into runs of pages that are neighbours in `order` (the bucket's page index). */
function contiguousRuns(firsts: readonly string[], order: readonly string[]): string[][] {
  const sorted = [...firsts].sort();
  const runs: string[][] = [];
  let prev = -2;
  for (const f of sorted) {
    const at = pageIndexOf(order, f);
    const last = runs[runs.length - 1];
    if (last !== undefined && at === prev + 1 && order[at] === f) last.push(f);
    else runs.push([f]);
    prev = at;
  }
  return runs;
}

function abortQuietly(tx: RwTx): void {
  try {
    tx.abort();
  } catch {
    // already finished or aborted
  }
  tx.done.catch(() => undefined);
}

/**
 * A commit's entries as sorted ranges of runs with no key in two: its column ranges as they
 * came, and its plain puts (the last put of a key wins) as one more. Ranges that overlap after
 * all (the batch broke its contract) are merged into one, the later one winning.
 */
function runsOf(batch: StorageBatch): ColumnRange[] {
  const runs = (batch.columns ?? []).filter((r) => r.to > r.from);
  if (batch.puts !== undefined && batch.puts.length > 0) {
    const byKey = new Map<string, Entry>();
    for (const e of batch.puts) byKey.set(e.key, e);
    const c = columnsOf([...byKey.values()].sort(keyOrder));
    runs.push({ c, from: 0, to: columnSize(c) });
  }
  if (runs.length < 2) return runs;
  const firstOf = (r: ColumnRange) => keyAt(r.c, r.from);
  const lastOf = (r: ColumnRange) => keyAt(r.c, r.to - 1);
  const sorted = runs.slice().sort((x, y) => (firstOf(x) < firstOf(y) ? -1 : 1));
  if (sorted.every((r, i) => i === 0 || lastOf(sorted[i - 1] as ColumnRange) < firstOf(r))) return sorted;
  const byKey = new Map<string, Entry>();
  for (const r of runs) for (const e of rangeEntries(r)) byKey.set(e.key, e);
  const c = columnsOf([...byKey.values()].sort(keyOrder));
  return [{ c, from: 0, to: columnSize(c) }];
}
