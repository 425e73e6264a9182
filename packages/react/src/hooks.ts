import {
  type Bucket,
  liveStore,
  type QuerySnapshot,
  queryKey,
  type SubscriptionPolicy,
  type Value,
  type WatchQuery,
} from '@mittsync/peer';
import { useContext, useMemo, useSyncExternalStore } from 'react';
import { ClientContext, useClient } from './context';
import { forgetReadiness, readinessOf } from './ready';
import { StatusStore, type SyncStatus } from './status';

/** Options of {@link useBucket}. */
export interface UseBucketOptions {
  /** How this device holds the bucket (`replica`, `readOnly`, `copy`), as `client.bucket` takes it. */
  policy?: SubscriptionPolicy;
  /**
   * Suspend (show the nearest `<Suspense>` fallback) until the bucket has caught up with the
   * relay once. A bucket that caught up before, on this device, is ready at once, offline too.
   */
  suspense?: boolean;
}

/**
 * The handle of bucket `name` on the provider's client (the same object on every render).
 * Writes go through it: `bucket.put`, `bucket.delete`, `bucket.transact`.
 *
 * @example
 * ```tsx
 * const todos = useBucket<Todo>('todos', { suspense: true });
 * return <button onClick={() => todos.put(`todo/${Date.now()}`, { title: 'new', done: false })}>Add</button>;
 * ```
 */
export function useBucket<T = Value>(name: string, opts: UseBucketOptions = {}): Bucket<T> {
  const client = useClient();
  const { policy, suspense } = opts;
  const bucket = useMemo(
    () => client.bucket<T>(name, policy === undefined ? undefined : { policy }),
    [client, name, policy],
  );
  if (suspense === true) {
    const r = readinessOf(client, bucket as Bucket<unknown>);
    if (r.error !== null) {
      forgetReadiness(bucket as Bucket<unknown>);
      throw r.error;
    }
    if (!r.ready) throw r.promise;
  }
  return bucket;
}

/** Options of {@link useQuery}. */
export interface UseQueryOptions {
  /**
   * Suspend until the first result instead of returning `loading: true` (and throw a failure
   * to start to the nearest error boundary instead of returning it in `error`).
   */
  suspense?: boolean;
}

/**
 * A live query as React state: the rows of `query` (`{ key }`, `{ keys }`, `{ prefix, limit }`
 * or `{ start, end, limit }`) in key order, re-rendering when, and only when, one of them
 * changes. Every component asking for the same query on the same bucket shares one live query
 * in the worker (started with the first, stopped after the last unmounts) and one snapshot,
 * read through `useSyncExternalStore`, so a concurrent render never shows two states at once.
 * `query` is compared by value: an inline object literal is fine. With `{ suspense: true }` it
 * suspends until the first result.
 *
 * @example
 * ```tsx
 * const { rows, loading } = useQuery(todos, { prefix: 'todo/' });
 * if (loading) return <Spinner />;
 * return rows.map((r) => <TodoItem key={r.key} id={r.key} todo={r.value} />);
 * ```
 */
export function useQuery<T = Value>(
  bucket: Bucket<T> | string,
  query: WatchQuery,
  opts: UseQueryOptions = {},
): QuerySnapshot<T> {
  const client = useContext(ClientContext);
  let handle: Bucket<T>;
  if (typeof bucket === 'string') {
    if (client === null) {
      throw new Error('@mittsync/react: useQuery by bucket name needs a <MittsyncProvider> above');
    }
    handle = client.bucket<T>(bucket);
  } else handle = bucket;
  const key = queryKey(query);
  // biome-ignore lint/correctness/useExhaustiveDependencies: the query is compared by its key
  const store = useMemo(() => liveStore(handle, query), [handle, key]);
  const snap = useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot);
  if (opts.suspense === true) {
    if (snap.error !== null) throw snap.error;
    if (snap.loading) throw store.load();
  }
  return snap;
}

/**
 * The sync state of `bucket` (a handle or a name), or of the whole client when omitted:
 * connection, phase, readiness, pending writes, last error. Re-renders only when one of these
 * changes (pending counts arrive at most every 50 ms).
 *
 * @example
 * ```tsx
 * const { connection, pending } = useStatus('todos');
 * return <span>{connection === 'open' ? 'online' : 'offline'}, {pending} unsent</span>;
 * ```
 */
export function useStatus(bucket?: Bucket<unknown> | string): SyncStatus {
  const client = useClient();
  const name = bucket === undefined || typeof bucket === 'string' ? bucket : bucket.name;
  const store = useMemo(() => new StatusStore(client, name), [client, name]);
  return useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot);
}
