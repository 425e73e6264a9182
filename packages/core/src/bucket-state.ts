import type { Checksum } from './checksum';
import type { EntryColumns } from './columns';
import type { Env } from './env';
import type { MittsyncError } from './errors';
import type { Mitt } from './mitt';
import type { Entry, Op, Version } from './model';
import type { DeliverMsg, FlushedMsg, SubscribedMsg, SubscriptionPolicy } from './protocol';
import { type KeySpan, type ReplicationSpec, spansToSpec } from './spec';
import { type BucketMeta, policyOf } from './storage';
import type { SchemaStatus } from './typed-values';

/**
 * Where a bucket's sync stands, as shown to users. `detached`: a `copy` between refreshes,
 * complete as of its checkpoint and not subscribed to the live stream.
 */
export type Phase = 'idle' | 'joining' | 'resuming' | 'flushing' | 'ready' | 'detached';

/** What `whenReady` resolves with: the bucket is complete up to `checkpoint`. */
export interface ReadyInfo {
  bucket: string;
  checkpoint: number;
  /** Writers whose every write before the join began is included (state flush). */
  covered: string[];
  /** Writers the flush could not wait for, and why. */
  missed: FlushedMsg['missed'];
  /**
   * `done` when a state flush completed (joins), `timeout` when its result never came,
   * `none` for a resume (which does not flush).
   */
  flush: 'done' | 'timeout' | 'none';
  /**
   * Entries this catch-up downloaded (tombstones included): the whole bucket (or spec) for a
   * join, only what changed since the checkpoint for a resume or a copy's refresh.
   */
  downloaded?: number;
}

/** A snapshot of one bucket's sync state. */
export interface BucketStatus {
  bucket: string;
  /** How this replica holds the bucket (see `Replica.openBucket`). */
  policy: SubscriptionPolicy;
  /**
   * The replication spec the bucket is held with: the one it was opened with, or the one the
   * relay applied (a token's key prefixes); absent for the whole bucket.
   */
  spec?: ReplicationSpec;
  phase: Phase;
  /** True once a catch-up completed (persisted; survives restarts). */
  ready: boolean;
  checkpoint: number;
  epoch: string | null;
  /**
   * Local ops not yet acknowledged by the relay. For a `copy`, its fork writes: they stay
   * local and are never pushed.
   */
  pending: number;
  /** Catch-up download progress. */
  progress: { pages: number; entries: number; ranges: number; rangesDone: number };
  /** Live ops held in the mitt. */
  mitt: { ops: number; bytes: number };
  /** Checksum checks against the relay that passed. */
  verified: number;
  lastError: { code: string; message: string } | null;
  /** The bucket's schema as this handle reads it (when opened with one): see `SchemaStatus`. */
  schema?: SchemaStatus;
}

interface Waiter {
  resolve(): void;
  reject(err: MittsyncError): void;
}

/** One key range of a catch-up download. */
export interface RangeCursor {
  /** Where the next request starts: moves as soon as a page arrives, before it is merged. */
  after: string | undefined;
  until: string | undefined;
  /** Entries changed since this seq (default: the catch-up's `since`). */
  since?: number;
  /** Only these keys (default: the bucket's spec). */
  spec?: ReplicationSpec;
  /** The last page of the range has arrived (it may still wait to be merged). */
  done: boolean;
  inflight: boolean;
}

/**
 * Keys of a downloaded page that a fresh join has merged: `after < key <= upTo` (`upTo`
 * undefined: to the end of its range, `until`), as of relay seq `head`.
 */
export interface MergedSpan {
  after: string | undefined;
  upTo: string | undefined;
  head: number;
}

/** A downloaded page waiting to be merged, with the keys it covers (see {@link MergedSpan}). */
export interface ArrivedPage {
  /** The page's entries, by column when the relay sent columns (see `pageReq.cols`). */
  entries: readonly Entry[] | EntryColumns;
  /** Undefined when the relay did not say as of which seq it read the page. */
  span: MergedSpan | undefined;
}

/** Progress of one catch-up (join or resume) on one subscription. */
export interface CatchUp {
  subId: number;
  since: number;
  from: number;
  epoch: string;
  /**
   * True while storage holds nothing of this bucket but the keys in `kept` (a join after
   * reset): downloaded pages are then merged without reading storage.
   */
  fresh: boolean;
  /**
   * The stored version of every key storage holds that a download may still bring (fresh
   * joins only): keys with pending local writes, local writes made during the join, and live
   * ops the mitt spilled. Versions only, no values, so a spill still frees memory; past
   * `MittBounds.maxKept` keys the join stops being fresh and merges read storage instead.
   */
  kept: Map<string, Version>;
  /** Pages downloaded and waiting to be merged, oldest first (bounded by the ranges in flight). */
  arrived: ArrivedPage[];
  /**
   * What a fresh join has merged, for applying held live ops without reading storage: sorted
   * by `after`, ranges and pages never overlap. Cleared (and not used) once a page came
   * without a `head`.
   */
  merged: MergedSpan[] | null;
  /** A merge of arrived pages is queued or running. */
  merging: boolean;
  ranges: RangeCursor[];
  /** Page requests sent (sizes the next one). */
  requested: number;
  pages: number;
  entries: number;
  /** Greatest seq among downloaded entries (the copy is fuzzy: some may be newer than `from`). */
  dlMaxSeq: number;
  flushId: string | undefined;
  flushed: FlushedMsg | undefined;
  flushTimer: unknown;
  flushTimedOut: boolean;
  /** Page requests that failed in a row (backs off the retries). */
  pageFailures: number;
  downloadDone: boolean;
  finishing: boolean;
}

/** Everything the replica tracks about one bucket in memory. */
export interface BucketState {
  name: string;
  meta: BucketMeta;
  /** Unacknowledged local ops, contiguous originSeqs, oldest first. */
  outbox: Op[];
  sentUpTo: number;
  ackedUpTo: number;
  canPush: boolean;
  ackTimer: unknown;
  waiters: Map<number, Waiter>;
  phase: Phase;
  /** Bumped on every (re)subscription; async work of an older one is discarded. */
  subId: number;
  /** A `sub` went out on this connection and no `unsub` since (a copy's detach sends one). */
  relaySubscribed: boolean;
  /** A `copy`'s refresh was asked for and has not completed yet. */
  refreshing: boolean;
  subTimer: unknown;
  subscribedOk: boolean;
  mitt: Mitt | null;
  /** Frames that arrived before `subscribed` (the stream may overtake it). */
  early: (DeliverMsg | FlushedMsg)[];
  catchUp: CatchUp | null;
  gapTimer: unknown;
  /** Checkpoint the current subscription resumes from (0 = join). */
  subSince: number;
  /** Greatest relay seq of our own acknowledged ops. */
  localAheadSeq: number;
  /** Greatest seq downloaded by the last catch-up (checksums compare only past it). */
  dlMaxSeqCheck: number;
  /** Relay checksum at a known seq (subscription start or end of a delivered frame). */
  sumAt: { seq: number; sum: Checksum } | null;
  /** The spec the relay said it applies to the current subscription (`subscribed.spec`). */
  relaySpec: ReplicationSpec | undefined;
  /** Seq the relay reported as head in the last pong. */
  probedHead: number;
  verified: number;
  /** Consecutive failed sync tasks (backs off the resumes that follow). */
  storageFailures: number;
  lastError: { code: string; message: string } | null;
  readyWaiters: ((info: ReadyInfo) => void)[];
  lastReady: ReadyInfo | null;
}

export function newBucketState(meta: BucketMeta, outbox: Op[]): BucketState {
  const acked = outbox.length > 0 ? (outbox[0] as Op).originSeq - 1 : meta.nextOriginSeq - 1;
  return {
    name: meta.bucket,
    meta,
    outbox,
    sentUpTo: acked,
    ackedUpTo: acked,
    canPush: false,
    ackTimer: undefined,
    waiters: new Map(),
    phase: isDetachedCopy(meta, false) ? 'detached' : 'idle',
    subId: 0,
    relaySubscribed: false,
    refreshing: false,
    subTimer: undefined,
    subscribedOk: false,
    mitt: null,
    early: [],
    catchUp: null,
    gapTimer: undefined,
    subSince: 0,
    localAheadSeq: 0,
    dlMaxSeqCheck: 0,
    sumAt: null,
    relaySpec: undefined,
    probedHead: 0,
    verified: 0,
    storageFailures: 0,
    lastError: null,
    readyWaiters: [],
    lastReady: null,
  };
}

/**
 * The progress record of a catch-up the relay just confirmed with `msg`: a join (`since` 0)
 * downloads every key range the relay split the bucket into, a resume one range from `since`.
 */
export function newCatchUp(msg: SubscribedMsg, since: number, widen?: readonly KeySpan[]): CatchUp {
  const keys = [undefined, ...msg.splits];
  const parts = since === 0 ? keys.length : 1;
  const ranges: RangeCursor[] = Array.from({ length: parts }, (_, i) => ({
    after: keys[i],
    until: since === 0 ? msg.splits[i] : undefined,
    done: false,
    inflight: false,
  }));
  // A widened spec: the spans it added are read in full, beside the resume of the rest.
  if (since > 0 && widen !== undefined && widen.length > 0) {
    ranges.push({
      after: undefined,
      until: undefined,
      since: 0,
      spec: spansToSpec(widen),
      done: false,
      inflight: false,
    });
  }
  return {
    subId: msg.subId,
    since,
    from: msg.from,
    epoch: msg.epoch,
    fresh: since === 0,
    kept: new Map(),
    arrived: [],
    merged: [],
    merging: false,
    ranges,
    requested: 0,
    pages: 0,
    entries: 0,
    dlMaxSeq: 0,
    flushId: msg.flushId,
    flushed: undefined,
    flushTimer: undefined,
    flushTimedOut: false,
    pageFailures: 0,
    downloadDone: false,
    finishing: false,
  };
}

/**
 * Cancels every timer of a bucket: the outbox's ack timeout, the live stream's gap timeout,
 * the subscription's retry and the catch-up's flush timeout (a new subscription or a lost
 * connection makes them all moot).
 */
export function clearTimers(b: BucketState, env: Env): void {
  env.clearTimeout(b.ackTimer);
  env.clearTimeout(b.gapTimer);
  env.clearTimeout(b.subTimer);
  if (b.catchUp !== null) env.clearTimeout(b.catchUp.flushTimer);
  b.ackTimer = b.gapTimer = b.subTimer = undefined;
}

/** A ready `copy` with no refresh asked for: it stays off the live stream. */
export function isDetachedCopy(meta: BucketMeta, refreshing: boolean): boolean {
  return policyOf(meta) === 'copy' && meta.ready && !refreshing;
}

export function bucketStatus(b: BucketState): BucketStatus {
  const cu = b.catchUp;
  return {
    bucket: b.name,
    policy: policyOf(b.meta),
    ...(b.relaySpec !== undefined
      ? { spec: b.relaySpec }
      : b.meta.spec !== undefined
        ? { spec: b.meta.spec }
        : {}),
    phase: b.phase,
    ready: b.meta.ready,
    checkpoint: b.meta.checkpoint,
    epoch: b.meta.epoch,
    pending: b.outbox.length,
    progress: {
      pages: cu?.pages ?? 0,
      entries: cu?.entries ?? 0,
      ranges: cu?.ranges.length ?? 0,
      rangesDone: cu?.ranges.filter((r) => r.done).length ?? 0,
    },
    mitt: { ops: b.mitt?.heldCount ?? 0, bytes: b.mitt?.bytes ?? 0 },
    verified: b.verified,
    lastError: b.lastError,
  };
}
