import type { MittsyncError } from '@mittsync/core';
import { keyOrder } from '@mittsync/core/model';
import type { Bucket, WatchQuery } from './bucket';
import type { Change, LiveResult, Row } from './live-query';

/**
 * One immutable state of a {@link LiveStore}: a new object after each delivery, the same
 * object until then, so UI frameworks can compare snapshots by identity.
 */
export interface QuerySnapshot<T> {
  /**
   * The result in key order. A row the last delivery did not change is the same object as
   * in the previous snapshot (memoized row components skip it).
   */
  readonly rows: readonly Row<T>[];
  /** True until the first result arrives (and after {@link LiveStore} let its query go). */
  readonly loading: boolean;
  /** Why the live query could not start, if it could not. */
  readonly error: MittsyncError | null;
  /** Deliveries applied so far: 0 while loading, then 1, 2, ... */
  readonly version: number;
  /** The value at `key` in this snapshot (binary search over `rows`). */
  get(key: string): T | undefined;
}

class Snapshot<T> implements QuerySnapshot<T> {
  constructor(
    readonly rows: readonly Row<T>[],
    readonly loading: boolean,
    readonly error: MittsyncError | null,
    readonly version: number,
  ) {}

  get(key: string): T | undefined {
    const { rows } = this;
    let lo = 0;
    let hi = rows.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const k = (rows[mid] as Row<T>).key;
      if (k === key) return (rows[mid] as Row<T>).value;
      if (k < key) lo = mid + 1;
      else hi = mid;
    }
    return undefined;
  }
}

const LOADING = new Snapshot<never>([], true, null, 0);

/**
 * `rows` (sorted by key) with a delivery's changes applied: one merge pass, O(rows + changes).
 * Rows the changes don't touch keep their objects. A delivery can name a key twice; the later
 * change is the newer (the worker sends a key again only with a newer version).
 */
export function patchRows<T>(rows: readonly Row<T>[], changes: readonly Change<T>[]): Row<T>[] {
  const last = new Map<string, Change<T>>();
  for (const c of changes) last.set(c.key, c);
  const sorted = [...last.values()].sort(keyOrder);
  const out: Row<T>[] = [];
  let i = 0;
  for (const c of sorted) {
    while (i < rows.length && (rows[i] as Row<T>).key < c.key) out.push(rows[i++] as Row<T>);
    if (i < rows.length && (rows[i] as Row<T>).key === c.key) i++;
    if (!c.deleted) out.push({ key: c.key, value: c.value as T });
  }
  while (i < rows.length) out.push(rows[i++] as Row<T>);
  return out;
}

/** A stable text of a query: equal queries (whatever their property order) give equal keys. */
export function queryKey(q: WatchQuery): string {
  if ('key' in q) return JSON.stringify(['key', q.key]);
  if ('keys' in q) return JSON.stringify(['keys', q.keys]);
  if ('prefix' in q) return JSON.stringify(['prefix', q.prefix, q.limit ?? null]);
  return JSON.stringify(['range', q.start ?? null, q.end ?? null, q.limit ?? null]);
}

/**
 * A live query as an external store (`subscribe` + synchronous `getSnapshot`), shared by
 * everyone who asks {@link liveStore} for the same query on the same bucket handle: one live
 * query in the worker however many subscribers, started by the first `subscribe` and stopped
 * once the last one has left (a microtask later, so an unsubscribe followed at once by a
 * subscribe, as React's StrictMode does, keeps it). Listeners hear only deliveries of this
 * query: a change to a key outside it never reaches them. `subscribe` and `getSnapshot` are
 * bound, so they can be passed around as they are (React's `useSyncExternalStore`).
 */
export class LiveStore<T> {
  private snap: Snapshot<T> = LOADING;
  private readonly listeners = new Set<() => void>();
  private stop: (() => void) | null = null;
  private loading: Promise<void> | null = null;

  constructor(
    private readonly bucket: Bucket<T>,
    readonly query: WatchQuery,
    readonly key: string,
    private readonly registry: Map<string, LiveStore<unknown>>,
  ) {}

  /** Subscribers now. */
  get subscribers(): number {
    return this.listeners.size;
  }

  /** Whether the live query runs in the worker. */
  get active(): boolean {
    return this.stop !== null;
  }

  readonly getSnapshot = (): QuerySnapshot<T> => this.snap;

  readonly subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    if (this.stop === null) {
      // A store let go earlier (and still held by its subscriber) takes its place again.
      if (!this.registry.has(this.key)) this.registry.set(this.key, this as LiveStore<unknown>);
      this.stop = this.bucket.watch(
        this.query,
        (r) => this.deliver(r),
        (e) => this.publish(new Snapshot(this.snap.rows, false, e, this.snap.version)),
      );
    }
    return () => {
      if (!this.listeners.delete(listener) || this.listeners.size > 0) return;
      queueMicrotask(() => {
        if (this.listeners.size > 0 || this.stop === null) return;
        this.stop();
        this.stop = null;
        this.snap = LOADING;
        if (this.registry.get(this.key) === this) this.registry.delete(this.key);
      });
    };
  };

  /**
   * Resolves once the store has a result or an error. When nobody subscribes yet it starts the
   * live query itself and keeps it `holdMs` after the result for a subscriber to take over: a
   * render suspended on this promise subscribes when React retries it.
   */
  load(holdMs = 5_000): Promise<void> {
    if (!this.snap.loading) return Promise.resolve();
    this.loading ??= new Promise<void>((resolve) => {
      let done = false;
      const hold = this.subscribe(() => {
        if (done || this.snap.loading) return;
        done = true;
        this.loading = null;
        resolve();
        setTimeout(hold, holdMs);
      });
    });
    return this.loading;
  }

  private deliver(r: LiveResult<T>): void {
    const rows = r.initial ? r.rows() : patchRows(this.snap.rows, r.changes);
    this.publish(new Snapshot(rows, false, null, this.snap.version + 1));
  }

  private publish(s: Snapshot<T>): void {
    this.snap = s;
    for (const l of [...this.listeners]) l();
  }
}

const registries = new WeakMap<Bucket<unknown>, Map<string, LiveStore<unknown>>>();

/**
 * The shared {@link LiveStore} of `query` on `bucket`: the same store for the same query
 * (compared by {@link queryKey}) on the same handle while anyone subscribes to it. Making one
 * costs nothing in the worker until its first `subscribe`.
 *
 * @example
 * ```ts
 * const store = liveStore(client.bucket<Todo>('todos'), { prefix: 'todo/' });
 * const stop = store.subscribe(() => render(store.getSnapshot().rows));
 * ```
 */
export function liveStore<T>(bucket: Bucket<T>, query: WatchQuery): LiveStore<T> {
  const b = bucket as Bucket<unknown>;
  let registry = registries.get(b);
  if (registry === undefined) {
    registry = new Map();
    registries.set(b, registry);
  }
  const key = queryKey(query);
  let store = registry.get(key);
  if (store === undefined) {
    store = new LiveStore<unknown>(b, query, key, registry);
    registry.set(key, store);
    // Asked for but never subscribed to (a render React threw away): don't keep it. A later
    // subscribe puts it back.
    const made = store;
    setTimeout(() => {
      if (made.subscribers === 0 && !made.active && registry.get(key) === made) registry.delete(key);
    }, 1000);
  }
  return store as LiveStore<T>;
}
