/**
 * @mittsync/core: the runtime-agnostic replication core.
 *
 * @example
 * ```ts
 * import { Replica, MemoryReplicaStorage } from '@mittsync/core';
 * const replica = await Replica.open({ storage: new MemoryReplicaStorage(), transport });
 * await replica.put('todos', 't1', { title: 'milk' });
 * ```
 */

export type { BucketStatus, Phase, ReadyInfo } from './bucket-state';
export type { Checksum } from './checksum';
export {
  checksumAdd,
  checksumAddBytes,
  checksumEquals,
  checksumOf,
  checksumRemove,
  checksumReplace,
  emptyChecksum,
} from './checksum';
export type { WireFormat } from './codec';
export { decodeFrame, encodeFrame, pageByColumns } from './codec';
export type { ColumnRange, EntryColumns } from './columns';
export {
  checksumAddIn,
  columnEntries,
  columnEntry,
  columnSize,
  columnsOf,
  decodeColumns,
  encodeColumns,
  hlcAt,
  indexIn,
  isTombstoneIn,
  keyAt,
  lowerBoundIn,
  maxHlcIn,
  rangeEntries,
  rangesSize,
  startIn,
  valueBytesOf,
} from './columns';
export type { Env } from './env';
export { backoffDelay, randomId, systemEnv } from './env';
export type { ErrorCode } from './errors';
export { ERROR_CODES, isErrorCode, MittsyncError, toMittsyncError } from './errors';
export type { Hlc } from './hlc';
export {
  checkDrift,
  compareHlc,
  decodeHlc,
  encodeHlc,
  HlcClock,
  hlcNode,
  hlcWall,
  isHlc,
  isReplicaId,
} from './hlc';
export type { BucketHostOptions, HostConnection } from './host';
export { allHostEntries, BucketHost } from './host';
export type { HostMeta, HostStore } from './host-store';
export { MemoryHostStore } from './host-store';
export { MemoryReplicaStorage } from './memory-storage';
export type { MittBounds } from './mitt';
export { DEFAULT_MITT_BOUNDS, Mitt } from './mitt';
export type { Entry, Op, SeqOp, Value, Version } from './model';
export { approxBytes, keyOrder, mergeEntry, opBytes, opToEntry, versionOf, wins } from './model';
export { packedEntry, packedValueOf, plainEntry } from './packed';
export type * from './protocol';
export { CLOSE_CODES, PROTOCOL_VERSION } from './protocol';
export type {
  AckLevel,
  ChangeListener,
  ChangeSource,
  ConnectionState,
  PageFetcher,
  ReplicaOptions,
  ReplicaStatus,
  Write,
} from './replica';
export { Replica } from './replica';
export { lowerBound, upperBound } from './search';
export type { SqlDriver, SqlValue } from './sql';
export type { BucketMeta, ReplicaStorage, ScanQuery, StorageBatch, StoredIdentity } from './storage';
export { newBucketMeta } from './storage';
export type { Transport, TransportHandlers } from './transport';
export { textAt, utf8Length } from './utf8';
export {
  DEFAULT_LIMITS,
  isBucketName,
  measureValue,
  validateClientMessage,
  validateOp,
  validateServerMessage,
} from './validate';
export { decodeValue, encodeValue, encodeValueView } from './value-codec';
export type { WebSocketFactory, WebSocketLike, WebSocketTransportOptions } from './ws-transport';
export { WebSocketTransport } from './ws-transport';
