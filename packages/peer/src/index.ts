/**
 * @mittsync/peer: the browser side of Mittsync. A worker hosts one replica per origin on
 * IndexedDB; pages talk to it through {@link createClient}.
 *
 * @example
 * ```ts
 * import { createClient } from '@mittsync/peer';
 * const client = createClient({ relay: 'https://relay.example.com', getToken });
 * const todos = client.bucket<{ title: string }>('todos');
 * await todos.put('t1', { title: 'milk' }, { ack: 'relay' });
 * todos.watch({ prefix: 't' }, (r) => console.log(r.rows()));
 * ```
 */

export type {
  AckLevel,
  BucketStatus,
  ErrorCode,
  OpenBucketOptions,
  Phase,
  ReadyInfo,
  ReplicationSpec,
  SubscriptionPolicy,
  Value,
} from '@mittsync/core';
export { MittsyncError, SUBSCRIPTION_POLICIES } from '@mittsync/core';
export type { ScanOptions, Transaction, WatchQuery, WriteOptions } from './bucket';
export { Bucket } from './bucket';
export type { ClientOptions } from './client';
export { Client, createClient } from './client';
export type { Hosting } from './connect';
export { devToken } from './dev-token';
export type { Change, LiveResult, Row } from './live-query';
export type { ClientStatus } from './worker/api';
