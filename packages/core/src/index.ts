/**
 * @mittsync/core: the runtime-agnostic replication core.
 *
 * This entry is what an application or a runtime author uses: the `Replica` and its storage and
 * transport contracts, the relay side (`BucketHost`, `HostStore`, `SqlDriver`), the wire protocol
 * and its codec, errors and the data model's types. Internals that other Mittsync packages share
 * live behind subpaths: `@mittsync/core/columns` (column runs and packed values, for stores),
 * `@mittsync/core/model` (HLC, merge and checksum functions) and `@mittsync/core/testing`.
 *
 * @example
 * ```ts
 * import { Replica, MemoryReplicaStorage } from '@mittsync/core';
 * const replica = await Replica.open({ storage: new MemoryReplicaStorage(), transport });
 * await replica.put('todos', 't1', { title: 'milk' });
 * ```
 *
 * @module @mittsync/core
 */

export type { ApplyingListener } from './applying';
// The replica, for applications.
export type { BucketStatus, Phase, ReadyInfo } from './bucket-state';
// The data model.
export type { Checksum } from './checksum';
export type { EncodeOptions, WireFormat } from './codec';
export { decodeFrame, encodeFrame, PACKED_OPS, pageByColumns } from './codec';
// Contracts a runtime implements, and the implementations core ships.
export type { ColumnRange, EntryColumns } from './columns';
export type { Env } from './env';
export { systemEnv } from './env';
// Errors.
export type { ErrorCode } from './errors';
export { ERROR_CODES, isErrorCode, MittsyncError, toMittsyncError } from './errors';
export type { Hlc } from './hlc';
export { isReplicaId } from './hlc';
export type { BucketHostOptions, HostConnection } from './host';
export { BucketHost, DEFAULT_PAGE_BYTES, DEFAULT_PAGE_CACHE_BYTES, MAX_PAGE_ENTRIES } from './host';
export type { HostReplicas } from './host-replicas';
export type { HostMeta, HostStore } from './host-store';
export { MemoryHostStore } from './host-store';
export { MemoryReplicaStorage } from './memory-storage';
export type { MittBounds } from './mitt';
export { DEFAULT_MITT_BOUNDS } from './mitt';
export type { Entry, Op, SeqOp, Value, Version } from './model';
export { packOps, unpackOps } from './op-pack';
export { packedEntry } from './packed';
export { PageCacheBudget } from './page-cache';
export type { FetchLike, HttpPageFetcherOptions } from './page-fetcher';
export { createHttpPageFetcher } from './page-fetcher';
// The wire protocol and its codec.
export type {
  AckMsg,
  AuthedMsg,
  AuthMsg,
  CkptMsg,
  ClientMessage,
  DeliverMsg,
  ErrorMsg,
  FlushedMsg,
  HelloMsg,
  MarkerMsg,
  MarkerReplyMsg,
  PageMsg,
  PageReqMsg,
  PingMsg,
  PongMsg,
  PushMsg,
  RecvMsg,
  RejectedOp,
  ResetMsg,
  ResyncMsg,
  ServerMessage,
  SubMsg,
  SubscribedMsg,
  SubscriptionPolicy,
  UnsubMsg,
  WelcomeMsg,
  WireLimits,
} from './protocol';
export {
  BEARER_SUBPROTOCOL_PREFIX,
  CLOSE_CODES,
  PROTOCOL_VERSION,
  SUBPROTOCOL,
  SUBSCRIPTION_POLICIES,
} from './protocol';
export { PURGED_SLOTS, PurgedKeys, purgedSlot } from './purged-keys';
export type {
  AckLevel,
  BucketOptions,
  ChangeListener,
  ChangeSource,
  ConnectionState,
  OpenBucketOptions,
  PageFetcher,
  ReplicaOptions,
  ReplicaStatus,
  Write,
} from './replica';
export { Replica } from './replica';
export type { HandleHost, TypedRow, TypedTransaction, TypedWriteOptions } from './replica-bucket';
export { ReplicaBucket } from './replica-bucket';
export type { GcDecision, GcInput, ReplicaRecord, ReplicaView } from './replicas';
export { collectBound, resumeReset } from './replicas';
export type {
  BucketControl,
  ReplicationDirection,
  ReplicationPrincipal,
  ReplicationRule,
} from './replication-control';
export {
  defaultControl,
  patchControl,
  replicationAllowed,
  replicationRefused,
} from './replication-control';
// Typed buckets: Standard Schema validators, versions and migrations.
export type {
  MaybePromise,
  Migration,
  ReadOutcome,
  SchemaInput,
  SchemaLike,
  SchemaMap,
  SchemaOutput,
  ValueIssue,
  VersionedSchema,
} from './schema';
export {
  checkPushedValue,
  DATA_FIELD,
  defineSchema,
  invalidValueError,
  issuePath,
  isVersionedSchema,
  migrate,
  prepareWrite,
  readValue,
  schemaLookup,
  toVersioned,
  unwrapVersion,
  VERSION_FIELD,
  wrapVersion,
} from './schema';
export type { KeyRange, KeySpan, ReplicationSpec } from './spec';
export {
  mergeProjected,
  outsideSpec,
  pageSpec,
  projectValue,
  restrictsKeys,
  scopeSpec,
  specCovers,
  specSpans,
  specWithinPrefixes,
  subtractSpans,
  validateSpec,
} from './spec';
export type { SqlDriver, SqlValue } from './sql';
export type {
  StandardFailure,
  StandardInput,
  StandardIssue,
  StandardOutput,
  StandardPathSegment,
  StandardResult,
  StandardSchemaProps,
  StandardSchemaV1,
  StandardSuccess,
  StandardTypes,
} from './standard-schema';
export { isStandardSchema } from './standard-schema';
export type { BucketMeta, ReplicaStorage, ScanQuery, StorageBatch, StoredIdentity } from './storage';
export type { Transport, TransportHandlers } from './transport';
export type { InvalidValueListener, InvalidValueReport, SchemaStatus } from './typed-values';
export { TypedValues } from './typed-values';
export { utf8Length } from './utf8';
export { DEFAULT_LIMITS, isBucketName, validateClientMessage, validateServerMessage } from './validate';
export { decodeValue, encodeValue, encodeValueView } from './value-codec';
export type { WebSocketFactory, WebSocketLike, WebSocketTransportOptions } from './ws-transport';
export { bearerSubprotocols, jwtExpiresAt, WebSocketTransport } from './ws-transport';
