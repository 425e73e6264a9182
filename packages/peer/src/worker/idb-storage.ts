import {
  type BucketMeta,
  type Entry,
  MittsyncError,
  type Op,
  type ReplicaStorage,
  type ScanQuery,
  type StorageBatch,
  type StoredIdentity,
} from '@mittsync/core';
import { type DBSchema, type IDBPDatabase, type IDBPTransaction, openDB } from 'idb';
import { isConnectionError, toStorageError } from './idb-errors';
import { PageCache } from './page-cache';
import {
  decodePage,
  encodePage,
  findInPage,
  lowerBound,
  mergeSorted,
  type Page,
  type PageRecord,
  pageIndexOf,
  splitPage,
} from './pages';

interface Schema extends DBSchema {
  identity: { key: 'self'; value: StoredIdentity };
  buckets: { key: string; value: BucketMeta };
  pages: { key: [string, string]; value: PageRecord };
  outbox: { key: [string, number]; value: Op };
}

type Db = IDBPDatabase<Schema>;
type StoreName = 'identity' | 'buckets' | 'pages' | 'outbox';
type RwTx = IDBPTransaction<Schema, StoreName[], 'readwrite'>;

const VERSION = 1;
const ALL: StoreName[] = ['identity', 'buckets', 'pages', 'outbox'];

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
  /** Decoded pages kept in memory (default 64, about 32k entries). */
  cachePages?: number;
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
const outboxRange = (bucket: string, upTo = Number.POSITIVE_INFINITY) =>
  IDBKeyRange.bound([bucket, Number.NEGATIVE_INFINITY], [bucket, upTo]);

interface LockManagerLike {
  request(name: string, cb: () => Promise<void>): Promise<void>;
}

function lockManager(): LockManagerLike | undefined {
  return (globalThis as { navigator?: { locks?: LockManagerLike } }).navigator?.locks;
}

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
  readonly name: string;
  private readonly opts: IdbStorageOptions;
  private db: Db | null = null;
  private opening: Promise<Db> | null = null;
  private identity: StoredIdentity | null = null;
  private lostError: MittsyncError | null = null;
  private releaseLock: (() => void) | null = null;
  private readonly cache: PageCache;
  private readonly indexLoads = new Map<string, Promise<string[]>>();
  private readonly metas = new Map<string, BucketMeta>();
  private readonly outboxes = new Map<string, Op[]>();
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(opts: IdbStorageOptions = {}) {
    this.opts = opts;
    this.name = opts.name ?? 'mittsync';
    this.cache = new PageCache(opts.cachePages ?? 64);
  }

  /** The error the store failed with for good (database deleted or evicted), if any. */
  get lost(): MittsyncError | null {
    return this.lostError;
  }

  // -----------------------------------------------------------------------------------------
  // Connection
  // -----------------------------------------------------------------------------------------

  private async acquireLock(): Promise<void> {
    const locks = lockManager();
    if (this.releaseLock !== null || locks === undefined || this.opts.exclusive === false) return;
    await new Promise<void>((granted) => {
      void locks.request(`mittsync-db:${this.name}`, () => {
        granted();
        return new Promise<void>((release) => {
          this.releaseLock = release;
        });
      });
    });
  }

  private connect(): Promise<Db> {
    if (this.db !== null) return Promise.resolve(this.db);
    if (this.opening !== null) return this.opening;
    const p = (async () => {
      await this.acquireLock();
      const db = await openDB<Schema>(this.name, VERSION, {
        upgrade(db) {
          db.createObjectStore('identity');
          db.createObjectStore('buckets', { keyPath: 'bucket' });
          db.createObjectStore('pages');
          db.createObjectStore('outbox');
        },
        blocking: (_current, next) => {
          // Someone deletes (next === null) or upgrades the database: let them, and stop.
          db.close();
          this.dropConnection(db);
          if (next === null) this.markLost('the database was deleted by another script or tab');
        },
        terminated: () => this.dropConnection(db),
      });
      this.db = db;
      return db;
    })();
    this.opening = p;
    return p.finally(() => {
      this.opening = null;
    });
  }

  private dropConnection(db: Db): void {
    if (this.db === db) this.db = null;
    this.cache.clear();
    this.indexLoads.clear();
  }

  private markLost(why: string): MittsyncError {
    if (this.lostError === null) {
      this.lostError = new MittsyncError(
        'STORAGE_LOST',
        `IndexedDB database ${this.name} is gone (${why}); the replica re-joins from the relay`,
      );
      this.opts.onLost?.(this.lostError);
    }
    return this.lostError;
  }

  /**
   * Runs `fn` on the open database. After a lost connection it reopens once; a database that
   * comes back without our identity was deleted or evicted: `STORAGE_LOST`.
   */
  private async run<T>(what: string, fn: (db: Db) => Promise<T>): Promise<T> {
    if (this.closed) throw new MittsyncError('CLOSED', 'storage is closed');
    if (this.lostError !== null) throw this.lostError;
    let db: Db;
    try {
      db = await this.connect();
      return await fn(db);
    } catch (e) {
      if (e instanceof MittsyncError) throw e;
      if (!isConnectionError(e) && this.db !== null) throw toStorageError(e, what);
    }
    if (this.lostError !== null) throw this.lostError;
    try {
      this.db?.close();
      this.db = null;
      this.cache.clear();
      db = await this.connect();
      const found = await db.get('identity', 'self');
      if (this.identity !== null && found === undefined) {
        db.close();
        this.db = null;
        throw this.markLost('the browser evicted or cleared it');
      }
      return await fn(db);
    } catch (e) {
      throw toStorageError(e, what);
    }
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
    this.db?.close();
    this.db = null;
    this.releaseLock?.();
    this.releaseLock = null;
  }

  // -----------------------------------------------------------------------------------------
  // Reads
  // -----------------------------------------------------------------------------------------

  async listBuckets(): Promise<BucketMeta[]> {
    const all = await this.run('listBuckets', (db) => db.getAll('buckets'));
    for (const m of all) this.metas.set(m.bucket, m);
    return all;
  }

  async loadBucket(bucket: string): Promise<BucketMeta | undefined> {
    const m = await this.run('loadBucket', (db) => db.get('buckets', bucket));
    if (m !== undefined) this.metas.set(bucket, m);
    return m;
  }

  async loadOutbox(bucket: string): Promise<Op[]> {
    const ops = await this.run('loadOutbox', (db) => db.getAll('outbox', outboxRange(bucket)));
    this.outboxes.set(bucket, ops.slice());
    return ops;
  }

  /** The sorted first keys of the bucket's pages (loaded once, then kept up to date). */
  private pageIndex(bucket: string): Promise<string[]> {
    const known = this.cache.index(bucket);
    if (known !== undefined) return Promise.resolve(known);
    let p = this.indexLoads.get(bucket);
    if (p === undefined) {
      const version = this.cache.version(bucket);
      p = this.run('pageIndex', async (db) => {
        const keys = await db.getAllKeys('pages', pageRange(bucket));
        const firsts = keys.map((k) => k[1]);
        this.cache.setIndex(bucket, firsts, version);
        return firsts;
      });
      this.indexLoads.set(bucket, p);
      const clear = () => this.indexLoads.delete(bucket);
      p.then(clear, clear);
    }
    return p;
  }

  /** Loads pages by first key: cached ones from memory, the rest in one transaction. */
  private async loadPages(bucket: string, firsts: readonly string[]): Promise<Map<string, Page>> {
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
      const tx = db.transaction('pages', 'readonly');
      return Promise.all(missing.map((f) => tx.store.get([bucket, f])));
    });
    missing.forEach((f, i) => {
      const rec = recs[i];
      const page: Page = { first: f, entries: rec === undefined ? [] : decodePage(rec) };
      out.set(f, page);
      this.cache.offer(bucket, page, version);
    });
    return out;
  }

  async getEntries(bucket: string, keys: readonly string[]): Promise<(Entry | undefined)[]> {
    if (keys.length === 0) return [];
    const firsts = await this.pageIndex(bucket);
    if (firsts.length === 0) return keys.map(() => undefined);
    const homes = keys.map((k) => firsts[Math.max(0, pageIndexOf(firsts, k))] as string);
    const pages = await this.loadPages(bucket, [...new Set(homes)]);
    return keys.map((k, i) => findInPage(pages.get(homes[i] as string) as Page, k));
  }

  async scan(bucket: string, q: ScanQuery): Promise<Entry[]> {
    const firsts = await this.pageIndex(bucket);
    const limit = q.limit ?? Number.POSITIVE_INFINITY;
    const out: Entry[] = [];
    if (firsts.length === 0 || limit <= 0) return out;
    const start =
      q.prefix !== undefined && (q.start === undefined || q.prefix > q.start) ? q.prefix : q.start;
    let i = start === undefined ? 0 : Math.max(0, pageIndexOf(firsts, start));
    // Pages arrive in chunks: small for a limited scan, bigger for a full one.
    let chunk = limit < 256 ? 1 : 16;
    while (i < firsts.length) {
      const want = firsts.slice(i, i + chunk);
      const pages = await this.loadPages(bucket, want);
      for (const f of want) {
        const entries = (pages.get(f) as Page).entries;
        let j = start === undefined ? 0 : lowerBound(entries, start);
        for (; j < entries.length; j++) {
          const e = entries[j] as Entry;
          if (q.end !== undefined && e.key >= q.end) return out;
          if (q.prefix !== undefined && !e.key.startsWith(q.prefix)) {
            if (e.key > q.prefix) return out;
            continue;
          }
          if (e.deleted && !q.includeDeleted) continue;
          out.push(e);
          if (out.length >= limit) return out;
        }
      }
      i += want.length;
      chunk = Math.min(chunk * 2, 64);
    }
    return out;
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
    const { bucket } = batch;
    // Sorted, one entry per key (the last put of a key wins).
    const byKey = new Map<string, Entry>();
    for (const e of batch.puts ?? []) byKey.set(e.key, e);
    const puts = [...byKey.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const firsts = puts.length > 0 ? await this.pageIndex(bucket) : undefined;
    let written: Page[] = [];
    let newFirsts: string[] | undefined;
    await this.run('commit', async (db) => {
      const tx = db.transaction(ALL, 'readwrite', { durability: this.durability(batch) });
      try {
        if (firsts !== undefined) [written, newFirsts] = await this.writePages(tx, bucket, firsts, puts);
        this.writeRest(tx, batch);
      } catch (e) {
        abortQuietly(tx);
        throw e;
      }
      await tx.done;
    });
    // Committed: now (and only now) the memory views follow.
    if (newFirsts !== undefined) this.cache.committed(bucket, written, newFirsts);
    this.afterCommit(batch);
  }

  /** Merges sorted `puts` into the pages that hold their keys, splitting pages that grow too big. */
  private async writePages(
    tx: RwTx,
    bucket: string,
    firsts: readonly string[],
    puts: readonly Entry[],
  ): Promise<[Page[], string[]]> {
    const store = tx.objectStore('pages');
    // Group puts by home page ('' is the home of everything in an empty bucket).
    const groups = new Map<string, Entry[]>();
    for (const e of puts) {
      const home = firsts.length === 0 ? '' : (firsts[Math.max(0, pageIndexOf(firsts, e.key))] as string);
      let g = groups.get(home);
      if (g === undefined) groups.set(home, (g = []));
      g.push(e);
    }
    const homes = [...groups.keys()];
    const cached = homes.map((f) => this.cache.get(bucket, f));
    const recs = await Promise.all(
      homes.map((f, i) => (cached[i] !== undefined ? undefined : store.get([bucket, f]))),
    );
    const written: Page[] = [];
    const added: string[] = [];
    homes.forEach((f, i) => {
      const old = cached[i]?.entries ?? (recs[i] === undefined ? [] : decodePage(recs[i] as PageRecord));
      const pieces = splitPage(f, mergeSorted(old, groups.get(f) as Entry[]));
      for (const p of pieces) {
        void store.put(encodePage(p.entries), [bucket, p.first]).catch(() => undefined);
        written.push(p);
        if (p.first !== f) added.push(p.first);
      }
      if (firsts.length === 0 || !firsts.includes(f)) added.push(f);
    });
    const next = added.length === 0 ? (firsts as string[]) : [...new Set([...firsts, ...added])].sort();
    return [written, next];
  }

  private writeRest(tx: RwTx, batch: StorageBatch): void {
    const { bucket } = batch;
    const quiet = (p: Promise<unknown>) => void p.catch(() => undefined);
    const outbox = tx.objectStore('outbox');
    if (batch.outboxReplace !== undefined) {
      quiet(outbox.delete(outboxRange(bucket)));
      for (const op of batch.outboxReplace) quiet(outbox.put(op, [bucket, op.originSeq]));
    }
    if (batch.outboxAckUpTo !== undefined) quiet(outbox.delete(outboxRange(bucket, batch.outboxAckUpTo)));
    for (const op of batch.outboxAdd ?? []) quiet(outbox.put(op, [bucket, op.originSeq]));
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
      kept.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      const pages = kept.length === 0 ? [] : splitPage('', kept);
      await this.run('resetBucket', async (db) => {
        const tx = db.transaction(['pages', 'buckets'], 'readwrite', { durability: 'relaxed' });
        const quiet = (p: Promise<unknown>) => void p.catch(() => undefined);
        const store = tx.objectStore('pages');
        quiet(store.delete(pageRange(bucket)));
        for (const p of pages) quiet(store.put(encodePage(p.entries), [bucket, p.first]));
        quiet(tx.objectStore('buckets').put(meta));
        await tx.done;
      });
      this.cache.dropBucket(bucket);
      this.cache.committed(
        bucket,
        pages,
        pages.map((p) => p.first),
      );
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

function abortQuietly(tx: RwTx): void {
  try {
    tx.abort();
  } catch {
    // already finished or aborted
  }
  tx.done.catch(() => undefined);
}
