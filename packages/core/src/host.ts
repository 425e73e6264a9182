import { type Checksum, checksumReplace, emptyChecksum } from './checksum';
import { type Env, randomId } from './env';
import { MittsyncError, toMittsyncError } from './errors';
import { hlcNode, hlcWall } from './hlc';
import { PageServer } from './host-pages';
import { HostReplicas } from './host-replicas';
import { SpecSums, specDeliver } from './host-spec';
import type { HostMeta, HostStore } from './host-store';
import { type Entry, type Op, opToEntry, type SeqOp, versionOf } from './model';
import { PageCacheBudget, PageCaches } from './page-cache';
import {
  type AckMsg,
  type CkptMsg,
  type FlushedMsg,
  MAX_REMEMBERED_REFUSALS,
  type MarkerReplyMsg,
  type PageMsg,
  type PageReqMsg,
  type PushMsg,
  type RejectedOp,
  type ServerMessage,
  type SubMsg,
  type SubscriptionPolicy,
  type WireLimits,
} from './protocol';
import { replicationRefused } from './replication-control';
import { checkPushedValue, type VersionedSchema } from './schema';
import { mergeProjected, outsideSpec, type ReplicationSpec, spansCover, specSpans } from './spec';
import { DEFAULT_LIMITS } from './validate';

export { MAX_PAGE_ENTRIES, pageEntryBytes } from './host-pages';

/** Default byte budget of one page (see {@link BucketHostOptions.maxPageBytes}). */
export const DEFAULT_PAGE_BYTES = 1024 * 1024;

/** Default memory of a page cache (see {@link BucketHostOptions.pageCache}). */
export const DEFAULT_PAGE_CACHE_BYTES = 32 * 1024 * 1024;

/** One replica's connection to one bucket, as the host sees it. */
export interface HostConnection {
  /** Unique per connection (a socket), stable while it lives. */
  readonly id: string;
  /** The authenticated replicaId (token subject). */
  readonly replicaId: string;
  /**
   * Whether the token allows writing this bucket. Only writers whose subscription's policy is
   * `replica` take part in state flushes.
   */
  readonly canWrite: boolean;
  /** The token's groups, for the admin control's allow/deny lists (`group:<name>`). */
  readonly groups?: readonly string[];
  send(msg: ServerMessage): void;
  /** Bytes or frames queued towards the client; past `maxBacklog` it is dropped as slow. */
  backlog?(): number;
}

export interface BucketHostOptions {
  bucket: string;
  store: HostStore;
  env: Env;
  limits?: WireLimits;
  /** How long a state flush waits for writers' counters before giving up on them. */
  flushTimeoutMs?: number;
  /**
   * Optional hard cap: tombstones more than this many seqs behind the head are purged even if
   * a live replica has not acknowledged them (it is reset if it resumes needing one). Default:
   * no cap; tombstones go once every live replica has acknowledged a checkpoint past them.
   */
  tombstoneRetainOps?: number;
  /**
   * The retention period: a replica silent (not connected, no `ckpt`) longer than this is
   * dropped from the replicas that hold tombstones back, and reset with reason `retention`
   * if it resumes needing a purged one. Default 30 days.
   */
  tombstoneRetainMs?: number;
  /** Outbound backlog (as reported by `HostConnection.backlog`) past which a subscriber is dropped. */
  maxBacklog?: number;
  /**
   * Byte budget of one page, socket or HTTP alike: a page ends at the first entry that takes
   * it past this many bytes (so it always holds at least one entry) and its `next` cursor
   * continues from there. Default {@link DEFAULT_PAGE_BYTES}.
   */
  maxPageBytes?: number;
  /** Number of key ranges to suggest for parallel downloads of large buckets. */
  downloadParts?: number;
  /** Buckets with at least this many entries get split points for parallel downloads. */
  splitMinEntries?: number;
  /**
   * The bucket's schema, when the relay is configured with one: every pushed `set` must read
   * as valid through it, else that op is refused with `INVALID_VALUE` (see `checkPushedValue`).
   */
  schema?: VersionedSchema;
  /**
   * Catch-up pages kept in memory for the next joins of a large bucket (see `page-cache.ts`),
   * for buckets of at least `minEntries` entries (default `splitMinEntries`), within `budget`
   * (the relay's, shared by its buckets), else within `maxBytes` of this bucket's own
   * (default {@link DEFAULT_PAGE_CACHE_BYTES}; 0 turns the cache off).
   */
  pageCache?: { maxBytes?: number; minEntries?: number; budget?: PageCacheBudget };
  /** Observes every committed batch (metrics). */
  onCommit?: (info: { ops: number; applied: number; ms: number }) => void;
}

interface PendingFlush {
  id: string;
  joiner: HostConnection;
  /** Writer connection id -> its replicaId and reported counter (undefined until it replies). */
  waiting: Map<string, { replicaId: string; target: number | undefined }>;
  covered: string[];
  missed: FlushedMsg['missed'];
  timer: unknown;
}

/**
 * The single-threaded primary of one bucket: assigns seqs, dedupes pushes by
 * (origin, originSeq), applies LWW, commits before acking, fans out, serves pages, keeps the
 * tombstone horizon and coordinates state flushes. Runtime-agnostic: the relay on Node, the
 * relay in a Durable Object and the simulator all drive this class.
 */
export class BucketHost {
  readonly bucket: string;
  private readonly store: HostStore;
  private readonly env: Env;
  private readonly limits: WireLimits;
  private readonly flushTimeoutMs: number;
  /**
   * Where the bucket's replicas are (records, the admin API's list), the tombstone GC they
   * drive, the purged-key record and the admin control of replication (host-replicas.ts).
   */
  readonly replicas: HostReplicas;
  private readonly maxBacklog: number;
  private readonly parts: number;
  private readonly splitMin: number;
  /** Catch-up pages (host-pages.ts). */
  private readonly pages: PageServer;
  /** Each writer's greatest refused originSeq (0: none), as its stored refusals say. */
  private readonly refusedTop = new Map<string, number>();
  /** The last {@link bucketSplits} and the bucket's size then. */
  private splits: { keys: string[]; count: number } | undefined;
  private readonly onCommit: BucketHostOptions['onCommit'];
  private readonly schema: VersionedSchema | undefined;
  private meta: HostMeta;
  private readonly subscribers = new Map<string, HostConnection>();
  /** Policy of each connection whose last `sub` asked for one other than `replica`. */
  private readonly policies = new Map<string, Exclude<SubscriptionPolicy, 'replica'>>();
  private readonly flushes = new Map<string, PendingFlush>();
  /** The newest `sub.subId` each connection sent (an older one arriving later is stale). */
  private readonly lastSubIds = new Map<string, number>();
  /** Replication spec of each connection whose last `sub` carried one (see host-spec.ts). */
  private readonly specs = new Map<string, ReplicationSpec>();
  private readonly specSums: SpecSums;

  constructor(opts: BucketHostOptions) {
    this.schema = opts.schema;
    this.bucket = opts.bucket;
    this.store = opts.store;
    this.env = opts.env;
    this.limits = opts.limits ?? DEFAULT_LIMITS;
    this.flushTimeoutMs = opts.flushTimeoutMs ?? 5_000;
    this.maxBacklog = opts.maxBacklog ?? Number.POSITIVE_INFINITY;
    this.parts = opts.downloadParts ?? 4;
    this.splitMin = opts.splitMinEntries ?? 20_000;
    const budget =
      opts.pageCache?.budget ?? new PageCacheBudget(opts.pageCache?.maxBytes ?? DEFAULT_PAGE_CACHE_BYTES);
    this.pages = new PageServer({
      bucket: this.bucket,
      store: this.store,
      maxPageBytes: opts.maxPageBytes ?? DEFAULT_PAGE_BYTES,
      caches: budget.maxBytes > 0 ? new PageCaches(budget) : undefined,
      cacheMin: opts.pageCache?.minEntries ?? this.splitMin,
      meta: () => this.meta,
    });
    this.onCommit = opts.onCommit;
    this.specSums = new SpecSums(opts.store);
    const loaded = this.store.loadMeta();
    if (loaded === undefined) {
      this.meta = {
        epoch: randomId(this.env.random, 12),
        head: 0,
        horizon: 0,
        purgedHlc: '',
        sum: emptyChecksum(),
      };
      this.store.transaction(() => this.store.saveMeta(this.meta));
    } else this.meta = loaded;
    this.replicas = new HostReplicas(
      this.store,
      this.env,
      opts.tombstoneRetainMs ?? 30 * 24 * 3600 * 1000,
      opts.tombstoneRetainOps,
    );
  }

  /** Current epoch, head seq and checksum (for tests, metrics and health). */
  get state(): Readonly<HostMeta> {
    return this.meta;
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  /** The reception counter of `replicaId`: its highest originSeq accepted here (0 if none). */
  receivedFrom(replicaId: string): number {
    return this.store.getReceived(replicaId);
  }

  /**
   * Registers a live subscriber and starts its catch-up, in one step: every op committed
   * after this call reaches the connection, so nothing falls between stream and download.
   */
  subscribe(conn: HostConnection, msg: SubMsg): void {
    const m = this.meta;
    if (!this.replicas.allows('out', { subject: conn.replicaId, groups: conn.groups ?? [] })) {
      const err = replicationRefused(this.bucket, 'out');
      conn.send({ type: 'error', code: err.code, message: err.message, bucket: this.bucket });
      return;
    }
    // A socket is ordered, but a relay may see an older `sub` after a newer one (a frame
    // re-sent, or the simulator's reordering): the replica ignores the answer to a stale subId,
    // so applying its policy and spec here would leave the relay serving what the replica no
    // longer asked for. subIds only grow on a connection.
    const last = this.lastSubIds.get(conn.id);
    if (last !== undefined && msg.subId < last) return;
    this.lastSubIds.set(conn.id, msg.subId);
    // Remembered even when the answer is `reset`: the connection said what it is.
    this.setPolicy(conn, msg.policy);
    this.setSpec(conn, msg.spec);
    if (msg.since > 0) {
      const reason =
        msg.epoch !== m.epoch
          ? 'epoch'
          : msg.since > m.head
            ? 'ahead'
            : this.replicas.resetReason(conn.replicaId, msg.since, m.horizon);
      if (reason !== undefined) {
        conn.send({ type: 'reset', bucket: this.bucket, subId: msg.subId, epoch: m.epoch, reason });
        return;
      }
    }
    if (this.subscribers.has(conn.id)) this.replicas.disconnect(conn.replicaId);
    const spec = msg.spec;
    this.replicas.subscribed(conn.replicaId, msg.since, m.head, msg.policy ?? 'replica', spec);
    this.subscribers.set(conn.id, conn);
    // A spec's download is split by its own entries' quantiles, not the bucket's.
    const splits =
      msg.since !== 0
        ? []
        : spec !== undefined
          ? this.specSums.splitsOf(spec, this.parts, this.splitMin)
          : this.bucketSplits();
    const flushId = msg.flush ? randomId(this.env.random, 10) : undefined;
    const refused = this.store.getRefused(conn.replicaId);
    conn.send({
      type: 'subscribed',
      bucket: this.bucket,
      subId: msg.subId,
      epoch: m.epoch,
      from: m.head + 1,
      received: this.store.getReceived(conn.replicaId),
      ...(refused.length === 0 ? {} : { rejected: refused }),
      sum: spec === undefined ? { ...m.sum } : this.specSums.sumOf(spec),
      splits,
      ...(flushId === undefined ? {} : { flushId }),
      ...(spec === undefined ? {} : { spec }),
    });
    if (flushId !== undefined) this.startFlush(conn, flushId);
  }

  /**
   * Keys splitting the bucket into {@link parts} ranges of similar size for a join's parallel
   * download. Finding them walks the bucket's key order (about 60 ms at 1M entries here), so
   * they are kept while the bucket's size stays within a tenth of what it was: any keys
   * split the download correctly, these only balance it.
   */
  private bucketSplits(): string[] {
    const n = this.store.count();
    if (n < this.splitMin) return [];
    const kept = this.splits;
    if (kept !== undefined && Math.abs(n - kept.count) * 10 <= kept.count) return kept.keys;
    const keys = this.store.splitKeys(this.parts);
    this.splits = { keys, count: n };
    return keys;
  }

  /**
   * Registers `conn` as a live subscriber again without a catch-up or any frame: for a host
   * rebuilt from storage (a Durable Object woken from hibernation) whose socket was subscribed
   * before, and whose client has every op up to the head it was last sent.
   */
  resubscribe(conn: HostConnection, policy?: SubscriptionPolicy, spec?: ReplicationSpec): void {
    if (!this.subscribers.has(conn.id)) this.replicas.connect(conn.replicaId);
    this.subscribers.set(conn.id, conn);
    this.setPolicy(conn, policy);
    this.setSpec(conn, spec);
  }

  /** The replication spec `conn` subscribed with, if any. */
  specOf(conn: HostConnection): ReplicationSpec | undefined {
    return this.specs.get(conn.id);
  }

  private setSpec(conn: HostConnection, spec: ReplicationSpec | undefined): void {
    const old = this.specs.get(conn.id);
    if (old !== undefined) this.specSums.release(old);
    if (spec === undefined) this.specs.delete(conn.id);
    else {
      this.specs.set(conn.id, spec);
      this.specSums.acquire(spec);
    }
  }

  /** The policy `conn` subscribed with (`replica` when it never said otherwise). */
  policyOf(conn: HostConnection): SubscriptionPolicy {
    return this.policies.get(conn.id) ?? 'replica';
  }

  private setPolicy(conn: HostConnection, policy: SubscriptionPolicy | undefined): void {
    if (policy === undefined || policy === 'replica') this.policies.delete(conn.id);
    else this.policies.set(conn.id, policy);
  }

  /** Forgets a connection: on unsub or disconnect. Flushes waiting on it give up on it. */
  unsubscribe(conn: HostConnection): void {
    if (this.subscribers.delete(conn.id)) this.replicas.disconnect(conn.replicaId);
    this.policies.delete(conn.id);
    this.lastSubIds.delete(conn.id);
    this.setSpec(conn, undefined);
    for (const f of [...this.flushes.values()]) {
      if (f.joiner.id === conn.id) {
        this.env.clearTimeout(f.timer);
        this.flushes.delete(f.id);
        continue;
      }
      const w = f.waiting.get(conn.id);
      if (w !== undefined) {
        f.waiting.delete(conn.id);
        f.missed.push({ replicaId: w.replicaId, reason: 'disconnected' });
        this.maybeFinishFlush(f);
      }
    }
  }

  isSubscribed(conn: HostConnection): boolean {
    return this.subscribers.has(conn.id);
  }

  /**
   * Accepts a frame of ops from `replicaId`, commits the new ones in one transaction and only
   * then acks and fans them out. Returns the ack (also sent to `conn` when given).
   *
   * Ops outside `conn`'s replication spec are rejected with `OUTSIDE_SPEC`, and ops to keys
   * outside `scope.prefixes` (a token's key prefixes) with `FORBIDDEN`, each on its own.
   */
  push(
    replicaId: string,
    msg: PushMsg,
    conn?: HostConnection,
    scope?: { prefixes?: readonly string[] },
  ): AckMsg {
    const policy = conn === undefined ? 'replica' : this.policyOf(conn);
    if (policy !== 'replica') {
      // Whatever the token allows: the subscription said it does not write. Nothing of the
      // frame is consumed, so the ops stay pushable on a `replica` subscription.
      const ack: AckMsg = { type: 'ack', bucket: this.bucket, upTo: this.store.getReceived(replicaId) };
      conn?.send({
        type: 'error',
        code: 'READ_ONLY',
        message: `bucket ${this.bucket} is subscribed as ${policy} on this connection: pushes are refused; subscribe as replica to write`,
        bucket: this.bucket,
      });
      return ack;
    }
    if (
      conn !== undefined &&
      !this.replicas.allows('in', { subject: replicaId, groups: conn.groups ?? [] })
    ) {
      // Like a readOnly subscription: nothing consumed, the connection stays.
      const err = replicationRefused(this.bucket, 'in');
      conn.send({ type: 'error', code: err.code, message: err.message, bucket: this.bucket });
      return { type: 'ack', bucket: this.bucket, upTo: this.store.getReceived(replicaId) };
    }
    const started = this.env.now();
    const now = started;
    let high = this.store.getReceived(replicaId);
    const accepted: SeqOp[] = [];
    const rejected: NonNullable<AckMsg['rejected']> = [];
    let gap = false;
    const before = this.meta;
    const meta: HostMeta = { ...before, sum: { ...before.sum } };
    const spec = conn === undefined ? undefined : this.specs.get(conn.id);
    const allowed = scope?.prefixes === undefined ? undefined : specSpans({ prefixes: [...scope.prefixes] });
    try {
      this.store.transaction(() => {
        for (const op of msg.ops) {
          if (op.origin !== replicaId) {
            throw new MittsyncError(
              'ORIGIN_MISMATCH',
              `op origin ${op.origin} is not the connection's replica ${replicaId}`,
            );
          }
          if (op.originSeq <= high) continue; // duplicate: already received
          if (op.originSeq !== high + 1) {
            gap = true;
            break;
          }
          high = op.originSeq;
          const problem =
            this.checkOp(op, now) ??
            (allowed !== undefined && !spansCover(allowed, op.key)
              ? new MittsyncError('FORBIDDEN', `token does not allow writing key ${op.key.slice(0, 80)}`)
              : outsideSpec(spec, op));
          if (problem !== undefined) {
            rejected.push({ originSeq: op.originSeq, code: problem.code, message: problem.message });
            continue;
          }
          const applied = this.applyOp(op, meta, spec?.fields);
          if (applied instanceof MittsyncError)
            rejected.push({ originSeq: op.originSeq, code: applied.code, message: applied.message });
          else if (applied !== undefined) accepted.push(applied);
        }
        if (high !== this.store.getReceived(replicaId)) this.store.setReceived(replicaId, high);
        if (rejected.length > 0) this.rememberRefusals(replicaId, rejected);
        const collected = accepted.length > 0 && this.replicas.collect(meta);
        if (accepted.length > 0 || collected) this.store.saveMeta(meta);
      });
    } catch (e) {
      const err = toMittsyncError(e);
      const ack: AckMsg = { type: 'ack', bucket: this.bucket, upTo: this.store.getReceived(replicaId) };
      conn?.send({ type: 'error', code: err.code, message: err.message, bucket: this.bucket });
      if (err.code === 'ORIGIN_MISMATCH') return ack;
      throw err;
    }
    this.meta = meta;
    this.onCommit?.({ ops: msg.ops.length, applied: accepted.length, ms: this.env.now() - started });
    const ack: AckMsg = { type: 'ack', bucket: this.bucket, upTo: high, seq: meta.head };
    if (rejected.length > 0) {
      ack.rejected = rejected;
      // Committed: the cache follows what rememberRefusals stored (ops refused in order).
      this.refusedTop.set(replicaId, (rejected[rejected.length - 1] as RejectedOp).originSeq);
    }
    const refusedUpTo = this.refusedUpTo(replicaId);
    if (refusedUpTo > 0) ack.refusedUpTo = refusedUpTo;
    if (gap) ack.gap = true;
    conn?.send(ack);
    if (accepted.length > 0) this.fanOut(accepted);
    this.progressFlushes(replicaId, high);
    return ack;
  }

  /**
   * Keeps `replicaId`'s latest refusals for its next `subscribed`, in the push's transaction:
   * an ack lost with its connection would otherwise leave the replica taking a refused op for
   * an accepted one once `received` covers it, and a relay restarted since would not know.
   */
  private rememberRefusals(replicaId: string, rejected: readonly RejectedOp[]): void {
    const list = [...this.store.getRefused(replicaId), ...rejected];
    this.store.setRefused(replicaId, list.slice(-MAX_REMEMBERED_REFUSALS));
  }

  /** `replicaId`'s greatest refused originSeq (0: none), for its acks. */
  private refusedUpTo(replicaId: string): number {
    let top = this.refusedTop.get(replicaId);
    if (top === undefined) {
      top = this.store.getRefused(replicaId).at(-1)?.originSeq ?? 0;
      this.refusedTop.set(replicaId, top);
    }
    return top;
  }

  /** Why an op cannot be applied (consumed, counted and rejected), or undefined. */
  private checkOp(op: Op, now: number): MittsyncError | undefined {
    if (hlcNode(op.hlc) !== op.origin) {
      return new MittsyncError('BAD_HLC', 'op.hlc must carry the origin replicaId as its node');
    }
    const ahead = hlcWall(op.hlc) - now;
    if (ahead > this.limits.maxDriftMs) {
      return new MittsyncError(
        'CLOCK_DRIFT',
        `op timestamp is ${ahead} ms ahead of the relay clock (limit ${this.limits.maxDriftMs} ms); fix the device clock`,
      );
    }
    if (this.schema !== undefined) return checkPushedValue(this.schema, this.bucket, op);
    return undefined;
  }

  /**
   * LWW-applies one op inside the open transaction; returns it with its seq if it changed
   * state, or the error that refuses it. A write through a projection (`fields`) changes only
   * those fields of the stored value.
   */
  private applyOp(op: Op, meta: HostMeta, fields?: readonly string[]): SeqOp | MittsyncError | undefined {
    const cur = this.store.getEntry(op.key);
    let eff: Op = op;
    if (fields !== undefined && op.kind === 'set') {
      // A write through a projection changes only its fields: the others are kept.
      const stored = cur === undefined || cur.deleted ? undefined : cur.value;
      eff = { ...op, value: mergeProjected(fields, stored, op.value ?? null) };
    }
    if (cur !== undefined) {
      if (op.hlc > cur.hlc) {
        // wins: applied below
      } else if (op.kind === 'set' && cur.deleted && op.hlc < cur.hlc) {
        // A set that loses to a tombstone: its writer holds the value locally and may never
        // see that tombstone (it may be purged before the writer resumes). Announce the
        // tombstone again under a fresh seq so the writer, and everyone, converges on it.
        const seq = ++meta.head;
        this.store.putEntry({ ...cur, seq });
        const prev = versionOf(cur);
        return { origin: hlcNode(cur.hlc), originSeq: 0, key: cur.key, kind: 'del', hlc: cur.hlc, seq, prev };
      } else {
        return undefined; // loses to a live value (its writer will receive it) or is the same write
      }
    } else {
      // The key may have been deleted by a tombstone we purged: the write must neither
      // resurrect it nor be dropped silently. Refused (its writer re-joins and drops it).
      const refused = this.replicas.checkAbsent(this.bucket, op);
      if (refused !== undefined) return refused;
    }
    const seq = ++meta.head;
    const entry = opToEntry(eff, seq);
    checksumReplace(meta.sum, op.key, cur, entry);
    this.store.putEntry(entry);
    const out: SeqOp = { ...eff, seq, prev: cur === undefined ? null : versionOf(cur) };
    return out;
  }

  /**
   * A replica's durable checkpoint (`ckpt`): recorded, and tombstones every live replica has
   * now passed are purged. A seq past the head answers `BAD_MESSAGE`.
   */
  checkpoint(conn: Pick<HostConnection, 'replicaId' | 'send'>, msg: CkptMsg): void {
    try {
      const meta: HostMeta = { ...this.meta, sum: { ...this.meta.sum } };
      this.store.transaction(() => {
        if (this.replicas.checkpoint(conn.replicaId, msg.seq, meta.head) && this.replicas.collect(meta))
          this.store.saveMeta(meta);
      });
      this.meta = meta;
    } catch (e) {
      // Without `bucket`: a replica takes a bucket's errors as refusals of its pushes.
      const err = toMittsyncError(e);
      conn.send({ type: 'error', code: err.code, message: `${this.bucket}: ${err.message}` });
    }
  }

  /**
   * Resets the bucket to a new epoch (admin): entries and reception counters stay, every
   * replica re-joins (live subscribers get `reset` now, others when they resume) and registers
   * again.
   */
  resetEpoch(): string {
    const meta: HostMeta = { ...this.meta, sum: { ...this.meta.sum }, epoch: randomId(this.env.random, 12) };
    this.store.transaction(() => {
      this.store.saveMeta(meta);
      this.replicas.clear();
    });
    this.meta = meta;
    for (const conn of [...this.subscribers.values()]) {
      this.subscribers.delete(conn.id);
      this.policies.delete(conn.id);
      conn.send({ type: 'reset', bucket: this.bucket, subId: -1, epoch: meta.epoch, reason: 'epoch' });
    }
    return meta.epoch;
  }

  /** Entries held, tombstones among them (admin API). */
  sizes(): { entries: number; tombstones: number } {
    return { entries: this.store.count(), tombstones: this.store.countTombstones() };
  }

  private fanOut(ops: SeqOp[]): void {
    const msg: ServerMessage = { type: 'deliver', bucket: this.bucket, ops, sum: { ...this.meta.sum } };
    this.specSums.apply(ops);
    // One filtered frame per distinct spec, shared by its subscribers.
    const bySpec = new Map<ReplicationSpec, ServerMessage>();
    for (const conn of [...this.subscribers.values()]) {
      if ((conn.backlog?.() ?? 0) > this.maxBacklog) {
        this.unsubscribe(conn);
        conn.send({ type: 'resync', bucket: this.bucket, reason: 'SLOW_CONSUMER' });
        continue;
      }
      const spec = this.specs.get(conn.id);
      if (spec === undefined) {
        conn.send(msg);
        continue;
      }
      let filtered = bySpec.get(spec);
      if (filtered === undefined) {
        filtered = specDeliver(this.bucket, spec, ops, this.specSums.sumOf(spec));
        bySpec.set(spec, filtered);
      }
      conn.send(filtered);
    }
  }

  /**
   * Serves one page of a catch-up download (over the socket or HTTP): at most `req.limit`
   * entries (and {@link MAX_PAGE_ENTRIES}), ending at the first entry past `maxPageBytes`.
   * With a `spec`, only its keys are read (span by span) and values are projected.
   */
  page(req: PageReqMsg, spec?: ReplicationSpec): PageMsg | ServerMessage {
    return this.pages.page(req, spec);
  }

  // -------------------------------------------------------------------------------------------
  // State flush
  // -------------------------------------------------------------------------------------------

  private startFlush(joiner: HostConnection, id: string): void {
    const f: PendingFlush = { id, joiner, waiting: new Map(), covered: [], missed: [], timer: undefined };
    for (const c of this.subscribers.values()) {
      if (c.id === joiner.id || !c.canWrite || this.policies.has(c.id)) continue;
      f.waiting.set(c.id, { replicaId: c.replicaId, target: undefined });
    }
    this.flushes.set(id, f);
    if (f.waiting.size === 0) {
      this.finishFlush(f);
      return;
    }
    f.timer = this.env.setTimeout(() => this.timeoutFlush(id), this.flushTimeoutMs);
    for (const cid of f.waiting.keys()) {
      this.subscribers.get(cid)?.send({ type: 'marker', bucket: this.bucket, flushId: id });
    }
  }

  /** A writer reports its transmission counter for a flush. */
  markerReply(conn: HostConnection, msg: MarkerReplyMsg): void {
    const f = this.flushes.get(msg.flushId);
    const w = f?.waiting.get(conn.id);
    if (f === undefined || w === undefined) return; // late or unknown: harmless
    w.target = msg.sent;
    this.progressFlushes(conn.replicaId, this.store.getReceived(conn.replicaId));
  }

  private progressFlushes(replicaId: string, received: number): void {
    for (const f of [...this.flushes.values()]) {
      for (const [cid, w] of f.waiting) {
        if (w.replicaId === replicaId && w.target !== undefined && received >= w.target) {
          f.waiting.delete(cid);
          f.covered.push(replicaId);
        }
      }
      this.maybeFinishFlush(f);
    }
  }

  private maybeFinishFlush(f: PendingFlush): void {
    if (f.waiting.size === 0 && this.flushes.has(f.id)) this.finishFlush(f);
  }

  private timeoutFlush(id: string): void {
    const f = this.flushes.get(id);
    if (f === undefined) return;
    for (const w of f.waiting.values()) f.missed.push({ replicaId: w.replicaId, reason: 'timeout' });
    f.waiting.clear();
    this.finishFlush(f);
  }

  private finishFlush(f: PendingFlush): void {
    this.env.clearTimeout(f.timer);
    this.flushes.delete(f.id);
    f.joiner.send({
      type: 'flushed',
      bucket: this.bucket,
      flushId: f.id,
      seq: this.meta.head,
      covered: f.covered,
      missed: f.missed,
    });
  }

  /** Everything the host holds, for tests and the simulator (MemoryHostStore only). */
  checksum(): Checksum {
    return { ...this.meta.sum };
  }
}

/** Entries of a store in key order (test helper over `scan`). */
export function allHostEntries(store: HostStore): Entry[] {
  const out: Entry[] = [];
  let after: string | undefined;
  for (;;) {
    const page = store.scan(0, after, undefined, 10_000);
    out.push(...page);
    const last = page[page.length - 1];
    if (page.length < 10_000 || last === undefined) return out;
    after = last.key;
  }
}
