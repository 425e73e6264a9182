/**
 * The Yjs side of the compare page (built with Vite, served by the y-websocket server's child
 * process): a `Y.Map` synced by y-websocket and stored by y-indexeddb, as an app would run
 * them; each function measures with `performance.now()` inside the page.
 */
import { IndexeddbPersistence } from 'y-indexeddb';
import { WebsocketProvider } from 'y-websocket';
import * as Y from 'yjs';
import { benchKey } from '../peer-page/data';

/** The writer's clock when the join started (see `yjsBackgroundWriter`). */
interface WriterMark {
  client: number;
  clock: number;
}

let current: { doc: Y.Doc; idb: IndexeddbPersistence; provider?: WebsocketProvider } | null = null;
/** Observed keys and when (`performance.timeOrigin + performance.now()`), for write-to-observe. */
const seen: [key: string, at: number][] = [];

const synced = (provider: WebsocketProvider) =>
  new Promise<void>((resolve) => {
    if (provider.synced) return resolve();
    const onSync = (s: boolean) => {
      if (!s) return;
      provider.off('sync', onSync);
      resolve();
    };
    provider.on('sync', onSync);
  });

/** Resolves once `test()` holds, testing after each update of `doc`. */
const until = (doc: Y.Doc, test: () => boolean) =>
  new Promise<void>((resolve) => {
    if (test()) return resolve();
    const check = () => {
      if (!test()) return;
      doc.off('afterTransaction', check);
      resolve();
    };
    doc.on('afterTransaction', check);
  });

/**
 * Resolves once every transaction y-indexeddb opened on `db` so far has committed, with the
 * number of updates stored: a transaction on the same store waits for every earlier read/write
 * one with an overlapping scope (IndexedDB's ordering rule), and y-indexeddb stores each update
 * in a read/write transaction opened as the update is applied.
 */
function committedUpdates(db: IDBDatabase): Promise<number> {
  return new Promise((resolve, reject) => {
    const tx = db.transaction('updates', 'readonly');
    const req = tx.objectStore('updates').count();
    tx.oncomplete = () => resolve(req.result);
    tx.onerror = () => reject(tx.error);
  });
}

function openDb(name: string): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(name);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

const api = {
  /**
   * Joins `room` on a fresh database: ms from creating the document until all `n` keys are
   * there, the writer's writes up to `mark` too, and all of it committed to IndexedDB.
   */
  async join(wsUrl: string, room: string, dbName: string, n: number, mark: WriterMark) {
    const t0 = performance.now();
    const log: string[] = [];
    const step = (what: string) => log.push(`${Math.round(performance.now() - t0)} ${what}`);
    const doc = new Y.Doc();
    const idb = new IndexeddbPersistence(dbName, doc);
    const provider = new WebsocketProvider(wsUrl, room, doc, { disableBc: true });
    current = { doc, idb, provider };
    const map = doc.getMap('kv');
    await synced(provider);
    step('synced');
    // Keys are only ever set, never deleted: once all are there they stay.
    await until(doc, () => map.size === n);
    step(`${n} keys`);
    await until(doc, () => Y.getState(doc.store, mark.client) >= mark.clock);
    step('writer mark');
    await idb.whenSynced;
    step('idb synced');
    const stored = await committedUpdates(idb.db as IDBDatabase);
    step(`committed (${stored} updates stored)`);
    return { ms: performance.now() - t0, log };
  },

  /**
   * Untimed check of a join: the database's stored updates, merged, hold all `n` keys and the
   * writer's writes up to `mark`.
   */
  async verify(dbName: string, n: number, mark: WriterMark) {
    const db = await openDb(dbName);
    const updates = await new Promise<Uint8Array[]>((resolve, reject) => {
      const req = db.transaction('updates', 'readonly').objectStore('updates').getAll();
      req.onsuccess = () => resolve(req.result as Uint8Array[]);
      req.onerror = () => reject(req.error);
    });
    db.close();
    const doc = new Y.Doc();
    Y.applyUpdate(doc, Y.mergeUpdates(updates));
    const keys = doc.getMap('kv').size;
    const clock = Y.getState(doc.store, mark.client);
    doc.destroy();
    return {
      updates: updates.length,
      bytes: updates.reduce((s, u) => s + u.byteLength, 0),
      ok: keys === n && clock >= mark.clock,
      detail: `${keys} of ${n} keys, writer clock ${clock} of ${mark.clock}`,
    };
  },

  /** Opens a stored database: ms until the first 50 keys are read (as ours scans 50 rows). */
  async coldStart(dbName: string, n: number) {
    const t0 = performance.now();
    const doc = new Y.Doc();
    const idb = new IndexeddbPersistence(dbName, doc);
    current = { doc, idb };
    await idb.whenSynced;
    const map = doc.getMap('kv');
    let rows = 0;
    for (let i = 0; i < 50; i++) if (map.get(benchKey(i)) !== undefined) rows++;
    const ms = performance.now() - t0;
    return { ms, rows, keys: map.size === n ? n : map.size };
  },

  /** Follows `room`, recording when each key changed by another peer is observed. */
  async observe(wsUrl: string, room: string, dbName: string) {
    const doc = new Y.Doc();
    const idb = new IndexeddbPersistence(dbName, doc);
    const provider = new WebsocketProvider(wsUrl, room, doc, { disableBc: true });
    current = { doc, idb, provider };
    doc.getMap('kv').observe((ev) => {
      if (ev.transaction.local) return;
      const at = performance.timeOrigin + performance.now();
      for (const key of ev.keysChanged) seen.push([key, at]);
    });
    await synced(provider);
    await idb.whenSynced;
  },

  /** What {@link observe} recorded so far. */
  observed: () => seen.slice(),

  /** This page's clock on the wall-clock scale Node's `performance.timeOrigin + now()` uses. */
  now: () => performance.timeOrigin + performance.now(),

  async close() {
    current?.provider?.destroy();
    await current?.idb.destroy();
    current?.doc.destroy();
    current = null;
  },
};

(globalThis as unknown as { yjsBench: typeof api }).yjsBench = api;
export type YjsPageApi = { yjsBench: typeof api };
