import {
  type BucketMeta,
  type Entry,
  MittsyncError,
  type Op,
  type StoredIdentity,
  type Value,
} from '@mittsync/core';
import { type DBSchema, type IDBPDatabase, type IDBPTransaction, openDB } from 'idb';
import { isConnectionError, toStorageError } from './errors';
import { type PageRecord, pageOf, recordOf } from './pages';

/** The database: one per replica, every bucket in it. */
export interface Schema extends DBSchema {
  identity: { key: 'self'; value: StoredIdentity };
  buckets: { key: string; value: BucketMeta };
  pages: { key: [string, string]; value: PageRecord };
  /** Per page, its entries newer than the page's copy (see bucket-index.ts). */
  deltas: { key: [string, string]; value: PageRecord };
  /**
   * Per bucket, the sorted first keys of its pages, written with every commit that changes
   * them: listing the page keys instead would read every page (IndexedDB keeps keys and
   * values together), ~100 ms for 100,000 entries on a cold start.
   */
  pageIndex: { key: string; value: string[] };
  /** Runs of a bucket's local ops keyed by their last `originSeq` (version 3: one op each). */
  outbox: { key: [string, number]; value: Op | Op[] };
}

/** An open connection. */
export type Db = IDBPDatabase<Schema>;
/** The object stores. */
export type StoreName = 'identity' | 'buckets' | 'pages' | 'deltas' | 'pageIndex' | 'outbox';
/** A readwrite transaction over some stores. */
export type RwTx = IDBPTransaction<Schema, StoreName[], 'readwrite'>;

/**
 * Schema versions: 1 stored pages and deltas as arrays of entry tuples with values as
 * structured-clone objects; 2 stored the values as JSON text and added each bucket's page
 * index in `pageIndex`; 3 stores pages and deltas by column, values as MessagePack (see
 * pages.ts); 4 stores the outbox as runs of ops (one record per commit's local writes, keyed
 * by the run's last `originSeq`) instead of one record per op, whose records version 3 wrote
 * are runs of one, so nothing is converted. Opening an older database converts it in place,
 * in the upgrade transaction; the version also keeps code older than a format away from it.
 */
const VERSION = 4;

interface LockManagerLike {
  request(name: string, cb: () => Promise<void>): Promise<void>;
}

function lockManager(): LockManagerLike | undefined {
  return (globalThis as { navigator?: { locks?: LockManagerLike } }).navigator?.locks;
}

/** How {@link IdbConnection} reports to its store. */
export interface IdbConnectionOptions {
  name: string;
  exclusive: boolean;
  /** Called once when the database was deleted or evicted underneath. */
  onLost?: (err: MittsyncError) => void;
  /** Called when the connection goes away (memory views of the data must be dropped). */
  onDrop(): void;
  /** Whether the store has seen its identity (a reopened database without one was wiped). */
  hasIdentity(): boolean;
}

/**
 * One IndexedDB connection with the recovery rules of the store: a Web Lock so only one
 * connection writes the database, one reopen after a lost connection, and `STORAGE_LOST` when
 * the database was deleted (`versionchange`) or comes back without its identity.
 */
export class IdbConnection {
  private db: Db | null = null;
  private opening: Promise<Db> | null = null;
  private lostError: MittsyncError | null = null;
  private releaseLock: (() => void) | null = null;
  closed = false;

  constructor(private readonly opts: IdbConnectionOptions) {}

  get lost(): MittsyncError | null {
    return this.lostError;
  }

  private async acquireLock(): Promise<void> {
    const locks = lockManager();
    if (this.releaseLock !== null || locks === undefined || !this.opts.exclusive) return;
    await new Promise<void>((granted) => {
      void locks.request(`mittsync-db:${this.opts.name}`, () => {
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
      const db = await openDB<Schema>(this.opts.name, VERSION, {
        async upgrade(db, oldVersion, _newVersion, tx) {
          if (oldVersion < 1) {
            db.createObjectStore('identity');
            db.createObjectStore('buckets', { keyPath: 'bucket' });
            db.createObjectStore('pages');
            db.createObjectStore('deltas');
            db.createObjectStore('pageIndex');
            db.createObjectStore('outbox');
            return;
          }
          if (oldVersion < 2) db.createObjectStore('pageIndex');
          // idb does not wait for this callback: a conversion that fails must abort the upgrade
          // itself, or the transaction commits what was converted so far as the new version.
          try {
            if (oldVersion < 3) await toVersion3(tx, oldVersion);
          } catch {
            // The open fails with the abort; nobody else waits on the transaction itself.
            tx.done.catch(() => undefined);
            tx.abort();
          }
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
    this.opts.onDrop();
  }

  markLost(why: string): MittsyncError {
    if (this.lostError === null) {
      this.lostError = new MittsyncError(
        'STORAGE_LOST',
        `IndexedDB database ${this.opts.name} is gone (${why}); the replica re-joins from the relay`,
      );
      this.opts.onLost?.(this.lostError);
    }
    return this.lostError;
  }

  /**
   * Runs `fn` on the open database. After a lost connection it reopens once; a database that
   * comes back without our identity was deleted or evicted: `STORAGE_LOST`.
   */
  async run<T>(what: string, fn: (db: Db) => Promise<T>): Promise<T> {
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
      this.opts.onDrop();
      db = await this.connect();
      const found = await db.get('identity', 'self');
      if (this.opts.hasIdentity() && found === undefined) {
        db.close();
        this.db = null;
        throw this.markLost('the browser evicted or cleared it');
      }
      return await fn(db);
    } catch (e) {
      throw toStorageError(e, what);
    }
  }

  /** Closes the connection and releases the database lock. */
  close(): void {
    this.closed = true;
    this.db?.close();
    this.db = null;
    this.releaseLock?.();
    this.releaseLock = null;
  }
}

/**
 * Converts a version-1 or -2 database: pages and deltas from entry tuples
 * (`[key, hlc, seq, 0, value]` or tombstones `[key, hlc, seq, 1]`; the value an object in
 * version 1, JSON text in version 2) to column records, and (from version 1) a page index per
 * bucket.
 */
async function toVersion3(
  tx: IDBPTransaction<Schema, StoreName[], 'versionchange'>,
  oldVersion: number,
): Promise<void> {
  const convert = (first: string, tuples: unknown[][]): PageRecord => {
    const entries: Entry[] = tuples.map((t) => {
      const [key, hlc, seq] = t as [string, string, number];
      if (t[3] === 1) return { key, hlc, seq, deleted: true };
      const value = (oldVersion < 2 ? t[4] : JSON.parse(t[4] as string)) as Value;
      return { key, hlc, seq, value };
    });
    return recordOf(pageOf(first, entries));
  };
  const old = (v: unknown) => (v as { t: unknown[][] }).t ?? (v as unknown[][]);
  const firsts = new Map<string, string[]>();
  for (let c = await tx.objectStore('pages').openCursor(); c !== null; c = await c.continue()) {
    const [bucket, first] = c.primaryKey;
    const list = firsts.get(bucket);
    if (list === undefined) firsts.set(bucket, [first]);
    else list.push(first); // cursor order: sorted by [bucket, first]
    await c.update(convert(first, old(c.value)));
  }
  if (oldVersion < 2)
    for (const [bucket, list] of firsts) await tx.objectStore('pageIndex').put(list, bucket);
  for (let c = await tx.objectStore('deltas').openCursor(); c !== null; c = await c.continue()) {
    await c.update(convert(c.primaryKey[1], old(c.value)));
  }
}
