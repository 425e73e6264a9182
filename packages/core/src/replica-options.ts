import type { Env } from './env';
import type { MittBounds } from './mitt';
import type { PageFetcher } from './page-requests';
import type { SubscriptionPolicy } from './protocol';
import type { SchemaLike } from './schema';
import type { ReplicationSpec } from './spec';
import type { ReplicaStorage } from './storage';
import type { Transport } from './transport';

/** Options of `Replica.open`. */
export interface ReplicaOptions {
  storage: ReplicaStorage;
  transport: Transport;
  /** Clock, timers and randomness (the simulator injects virtual ones). */
  env?: Env;
  /** replicaId for a fresh store (default: random). Ignored when the store has an identity. */
  replicaId?: string;
  mitt?: Partial<MittBounds>;
  /**
   * Entries per catch-up page (default 4,000). Measured in Chromium against the Node relay,
   * joining 1M keys, alternating: 7.6 / 9.1 / 8.4 s with 4,000 against 9.0 / 9.4 / 10.8 s
   * with 2,000 (8,000: 8.7 s); at 100k no difference.
   */
  pageSize?: number;
  /** Key ranges downloaded in parallel during a join. */
  parallelRanges?: number;
  /** Ops per push frame. */
  pushBatch?: number;
  /** Unacknowledged ops in flight before waiting for acks. */
  pushWindow?: number;
  /** Re-send unacknowledged ops after this long without an ack. */
  ackTimeoutMs?: number;
  /** Resume when a seq gap in the live stream persists this long. */
  gapTimeoutMs?: number;
  /** Re-request a page, a subscription or a flush result after this long. */
  requestTimeoutMs?: number;
  /** Liveness probe interval (also detects a lost stream tail). */
  pingIntervalMs?: number;
  /** Reconnect backoff base and cap (full jitter). */
  backoff?: { baseMs: number; capMs: number };
  /** Fetch catch-up pages over another channel (e.g. HTTP); default: the socket. */
  fetchPage?: PageFetcher;
  /** Connect on open (default true). */
  autoConnect?: boolean;
}

export type AckLevel = 'local' | 'relay';

/** Options of {@link Replica.openBucket}. */
export interface OpenBucketOptions {
  /**
   * How this replica holds the bucket (default: the policy it was last opened with, or
   * `replica` for a new bucket). Persisted with the bucket's meta.
   * - `replica`: synchronized, read-write.
   * - `readOnly`: synchronized; writes fail at once with `READ_ONLY`, and the relay refuses
   *   pushes on the subscription whatever the token allows.
   * - `copy`: one consistent copy as of a checkpoint (a join, state flush included), then
   *   detached from the live stream. Writes stay local (a fork: stored and readable, kept in
   *   the outbox but never pushed). {@link Replica.refresh} brings it up to date with what
   *   changed since its checkpoint; a refreshed entry and a fork write of the same key merge
   *   by last-writer-wins on their HLCs, as everywhere.
   *
   * Opening a bucket with another policy than its stored one switches it, at once (it
   * re-subscribes when connected), unless it has local ops the new policy would strand
   * (unacknowledged writes, or a copy's fork writes): then it fails with `POLICY_CONFLICT`
   * and the bucket keeps its policy.
   */
  policy?: SubscriptionPolicy;
  /**
   * Hold only part of the bucket (see `ReplicationSpec`): keys under some prefixes or in some
   * ranges, optionally only some top-level fields of each value. Writes outside it fail at once
   * with `OUTSIDE_SPEC`. `null` goes back to the whole bucket. Changing it is
   * {@link Replica.setSpec}.
   */
  spec?: ReplicationSpec | null;
}

/** Options of {@link Replica.bucket}: a policy and, for a typed bucket, its schema. */
export interface BucketOptions<S extends SchemaLike = SchemaLike> extends OpenBucketOptions {
  /**
   * Any Standard Schema validator (Zod, Valibot, ArkType...) or a versioned one from
   * `defineSchema`: writes are checked before they are stored (`INVALID_VALUE` naming the
   * path), reads come back typed by it, migrated from older versions; values that do not fit
   * are reported in `status().schema` and to `onInvalid` listeners, and skipped by reads.
   */
  schema?: S;
}
