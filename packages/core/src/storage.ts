import type { Checksum } from './checksum';
import { emptyChecksum } from './checksum';
import type { ColumnRange } from './columns';
import type { Hlc } from './hlc';
import type { Entry, Op } from './model';
import type { SubscriptionPolicy } from './protocol';
import type { KeySpan, ReplicationSpec } from './spec';

/** What a replica persists about one bucket, next to its entries. */
export interface BucketMeta {
  bucket: string;
  /** Epoch of the relay log the checkpoint belongs to (null before the first catch-up). */
  epoch: string | null;
  /** Highest contiguous relay seq whose data is durably applied. */
  checkpoint: number;
  /** True once a catch-up completed; a half-joined bucket is never ready. */
  ready: boolean;
  /** The next originSeq this replica will give a local op in this bucket. */
  nextOriginSeq: number;
  /** Relay epoch our originSeqs are counted in (null before the first subscription). */
  counterEpoch: string | null;
  /** Checksum of the bucket's live entries as stored. */
  sum: Checksum;
  /**
   * How this replica holds the bucket (see `Replica.openBucket`). Absent in metas stored before
   * policies existed: they are `replica`s.
   */
  policy?: SubscriptionPolicy;
  /** The replication spec this replica holds the bucket with (absent: the whole bucket). */
  spec?: ReplicationSpec;
  /**
   * Key spans a widened spec added that are not downloaded yet: the next catch-up reads them
   * in full (the rest resumes from the checkpoint), and clears this when it is ready.
   */
  widen?: KeySpan[];
  /**
   * The highest originSeq among this replica's ops the relay refused that it has acted on
   * (re-joined for): the relay repeats its latest refusals in `subscribed`, and those at or
   * below this are old news.
   */
  refusedUpTo?: number;
}

/** The policy a stored meta records (`replica` when it predates policies). */
export function policyOf(meta: BucketMeta): SubscriptionPolicy {
  return meta.policy ?? 'replica';
}

/** The meta of a bucket nothing is known about yet. */
export function newBucketMeta(bucket: string, policy: SubscriptionPolicy = 'replica'): BucketMeta {
  return {
    policy,
    bucket,
    epoch: null,
    checkpoint: 0,
    ready: false,
    nextOriginSeq: 1,
    counterEpoch: null,
    sum: emptyChecksum(),
  };
}

/** One atomic write: entries, outbox changes and meta updates commit together or not at all. */
export interface StorageBatch {
  bucket: string;
  /** Entries to store, already decided by LWW in the core (overwrite what is stored). */
  puts?: Entry[];
  /**
   * More entries to store, by column: ranges of runs sorted by key, no key in two ranges nor
   * in `puts`. Only given to a store whose {@link ReplicaStorage.columnar} is true.
   */
  columns?: ColumnRange[];
  /** Local ops to add to the outbox (same transaction as their data: never one without the other). */
  outboxAdd?: Op[];
  /** Remove outbox ops with originSeq <= this. */
  outboxAckUpTo?: number;
  /** Replace the whole outbox (renumbering after a relay restore). */
  outboxReplace?: Op[];
  /** New bucket meta (whole record). */
  meta?: BucketMeta;
  /** Persisted HLC floor of the replica. */
  clock?: Hlc;
}

/** Query for {@link ReplicaStorage.scan}: a prefix or a key range, in key order. */
export interface ScanQuery {
  prefix?: string;
  /** Inclusive lower bound. */
  start?: string;
  /** Exclusive upper bound. */
  end?: string;
  limit?: number;
  /** Include tombstones (default false). */
  includeDeleted?: boolean;
}

/** What {@link ReplicaStorage.open} finds. */
export interface StoredIdentity {
  replicaId: string;
  clock: Hlc | null;
}

/**
 * The durable state of a replica: entries per bucket, the outbox and meta. The memory store
 * (tests, simulator, Node) and the IndexedDB store (browser) implement it, and both run
 * `runReplicaStorageTests`. Every method is coarse-grained on purpose: a batch per call.
 */
export interface ReplicaStorage {
  /** Whether data survives a restart (false for memory-only modes). */
  readonly persistent: boolean;
  /**
   * Whether {@link commit} takes `columns` (a bulk download's pages as they came, by column).
   * Without it the replica hands over entries.
   */
  readonly columnar?: boolean;
  /** Opens the store; returns the stored identity or null on a fresh (or wiped) store. */
  open(): Promise<StoredIdentity | null>;
  /** Records the identity of a fresh replica. */
  saveIdentity(identity: StoredIdentity): Promise<void>;
  listBuckets(): Promise<BucketMeta[]>;
  loadBucket(bucket: string): Promise<BucketMeta | undefined>;
  /** Point reads, tombstones included; `undefined` where absent. */
  getEntries(bucket: string, keys: readonly string[]): Promise<(Entry | undefined)[]>;
  scan(bucket: string, query: ScanQuery): Promise<Entry[]>;
  /** The bucket's unacknowledged local ops, in originSeq order. */
  loadOutbox(bucket: string): Promise<Op[]>;
  /** Applies a batch atomically. */
  commit(batch: StorageBatch): Promise<void>;
  /**
   * Atomically drops every entry of the bucket except `keep` (pending local writes) and
   * writes `meta`: the start of a (re-)join.
   */
  resetBucket(bucket: string, keep: readonly string[], meta: BucketMeta): Promise<void>;
  close(): Promise<void>;
}
