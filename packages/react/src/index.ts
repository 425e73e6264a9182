/**
 * @mittsync/react: React bindings for Mittsync. A provider for the client, `useBucket`,
 * `useQuery` (live queries through `useSyncExternalStore`, one per distinct query, shared by
 * every component that asks) and `useStatus`. Writes go through the bucket handle.
 *
 * @example
 * ```tsx
 * function Todos() {
 *   const todos = useBucket<Todo>('todos');
 *   const { rows } = useQuery(todos, { prefix: 'todo/' });
 *   const { connection, pending } = useStatus(todos);
 *   return <ul>{rows.map((r) => <li key={r.key}>{r.value.title}</li>)}</ul>;
 * }
 * ```
 */

export type { QuerySnapshot, Row, WatchQuery } from '@mittsync/peer';
export type { MittsyncProviderProps } from './context';
export { MittsyncProvider, useClient } from './context';
export type { UseBucketOptions, UseQueryOptions } from './hooks';
export { useBucket, useQuery, useStatus } from './hooks';
export type { SyncStatus } from './status';
