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
 *
 * @module @mittsync/peer
 */

export type {
  AckLevel,
  BucketStatus,
  ErrorCode,
  InvalidValueReport,
  Migration,
  OpenBucketOptions,
  Phase,
  ReadyInfo,
  ReplicationSpec,
  ReplicaView,
  SchemaInput,
  SchemaLike,
  SchemaOutput,
  SchemaStatus,
  StandardSchemaV1,
  SubscriptionPolicy,
  Value,
  ValueIssue,
  VersionedSchema,
} from '@mittsync/core';
export { defineSchema, MittsyncError, SUBSCRIPTION_POLICIES } from '@mittsync/core';
export type { ScanOptions, Transaction, WatchQuery, WriteOptions } from './bucket';
export { Bucket } from './bucket';
export type { BucketOptions, ClientOptions } from './client';
export { Client, createClient } from './client';
export type { Hosting } from './connect';
export { devToken } from './dev-token';
export type { Change, LiveResult, Row } from './live-query';
export type { QuerySnapshot } from './live-store';
export { LiveStore, liveStore, queryKey } from './live-store';
export type { ClientStatus } from './worker/api';
