import { type BucketMeta, MittsyncError, type Op, type StoredIdentity } from '@mittsync/core';
import { type DBSchema, type IDBPDatabase, type IDBPTransaction, openDB } from 'idb';
import { isConnectionError, toStorageError } from './idb-errors';
import type { PageRecord, StoredTuple } from './pages';

/** The database: one per replica, every bucket in it. */
export interface Schema extends DBSchema {
  identity: { key: 'self'; value: StoredIdentity };
  buckets: { key: string; value: BucketMeta };
  pages: { key: [string, string]; value: PageRecord };
  /** Per page, its entries newer than the page's copy (see bucket-index.ts). */
  deltas: { key: [string, string]; value: StoredTuple[] };
  /**
   * Per bucket, the sorted first keys of its pages, written with every commit that changes
   * them: listing the page keys instead would read every page (IndexedDB keeps keys and
   * values together), ~100 ms for 100,000 entries on a cold start.
   */
  pageIndex: { key: string; value: string[] };
  outbox: { key: [string, number]; value: Op };
}

/** An open connection. */
export type Db = IDBPDatabase<Schema>;
/** The object stores. */
export type StoreName = 'identity' | 'buckets' | 'pages' | 'deltas' | 'pageIndex' | 'outbox';
/** A readwrite transaction over some stores. */
export type RwTx = IDBPTransaction<Schema, StoreName[], 'readwrite'>;

/**
 * Schema versions: 1 stored values in pages and deltas as structured-clone objects; 2 stores
 * them as JSON text (see pages.ts) and keeps each bucket's page index in `pageIndex`.
 * Opening a version-1 database converts it in place.
 */
const VERSION = 2;

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
          if (oldVersion < 2) {
            db.createObjectStore('pageIndex');
            await toVersion2(tx);
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

/** Converts a version-1 database: values as JSON text, and a page index per bucket. */
async function toVersion2(tx: IDBPTransaction<Schema, StoreName[], 'versionchange'>): Promise<void> {
  const convert = (tuples: unknown[][]): StoredTuple[] =>
    tuples.map((t) =>
      t[3] === 1
        ? [t[0] as string, t[1] as string, t[2] as number, 1]
        : [t[0] as string, t[1] as string, t[2] as number, 0, JSON.stringify(t[4])],
    );
  const firsts = new Map<string, string[]>();
  for (let c = await tx.objectStore('pages').openCursor(); c !== null; c = await c.continue()) {
    const [bucket, first] = c.primaryKey;
    const list = firsts.get(bucket);
    if (list === undefined) firsts.set(bucket, [first]);
    else list.push(first); // cursor order: sorted by [bucket, first]
    await c.update({ t: convert(c.value.t as unknown as unknown[][]) });
  }
  for (const [bucket, list] of firsts) await tx.objectStore('pageIndex').put(list, bucket);
  for (let c = await tx.objectStore('deltas').openCursor(); c !== null; c = await c.continue()) {
    await c.update(convert(c.value as unknown as unknown[][]));
  }
}
