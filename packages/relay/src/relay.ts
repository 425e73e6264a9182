import {
  type AckMsg,
  BucketHost,
  type Env,
  encodeFrame,
  type HostConnection,
  type HostStore,
  MittsyncError,
  PageCacheBudget,
  type PageMsg,
  type PageReqMsg,
  type PushMsg,
  type ReplicationSpec,
  type ResetMsg,
  type SchemaLike,
  type SchemaMap,
  type ServerMessage,
  type SqlDriver,
  schemaLookup,
  systemEnv,
  toMittsyncError,
  toVersioned,
  type VersionedSchema,
  type WireFormat,
} from '@mittsync/core';
import type { Authenticator, Principal } from './auth';
import { type RelayLimits, resolveLimits, wireLimits } from './limits';
import { RelayMetrics } from './metrics';
import { PageFlights } from './page-flights';
import { Session } from './session';
import type {
  HostedSession,
  RelaySocket,
  SessionHost,
  SessionPush,
  SessionSnapshot,
  SocketHandler,
} from './session-host';
import { type BucketSummary, SqlHostStore, sqlBucketSummaries } from './sql-host-store';

/** Default of {@link RelayOptions.pageCacheBytes}. */
export const DEFAULT_RELAY_PAGE_CACHE_BYTES = 64 * 1024 * 1024;

export type { BucketSummary };

/** Where bucket hosts keep their state, and the transaction a group commit runs in. */
export interface HostStoreProvider {
  /** The store of one bucket (called when its host becomes resident). */
  open(bucket: string): HostStore;
  /** Runs `fn` in one transaction covering every store of this provider; nested calls must nest. */
  transaction<T>(fn: () => T): T;
  close?(): void;
  /**
   * Buckets in name order after `after`, with their sizes (admin API). Absent where storage
   * cannot be enumerated (one Durable Object per bucket).
   */
  summaries?(after: string | undefined, limit: number): BucketSummary[];
}

/** A {@link HostStoreProvider} over one SQL database holding every bucket. */
export function sqlStores(sql: SqlDriver & { close?(): void }): HostStoreProvider {
  return {
    open: (bucket) => new SqlHostStore(sql, bucket),
    transaction: (fn) => sql.transaction(fn),
    close: () => sql.close?.(),
    summaries: (after, limit) => sqlBucketSummaries(sql, after, limit),
  };
}

export type LogLevel = 'info' | 'warn' | 'error';
export type RelayLog = (level: LogLevel, message: string, detail?: Record<string, unknown>) => void;

export interface RelayOptions {
  stores: HostStoreProvider;
  auth: Authenticator;
  limits?: Partial<RelayLimits>;
  env?: Env;
  /**
   * Memory for catch-up pages kept to serve the next joins of large buckets, shared by all
   * buckets (default 64 MB; 0 turns it off). See `PageCacheBudget` in core.
   */
  pageCacheBytes?: number;
  /** Bucket hosts kept in memory; idle ones past this are evicted, least recently used first. */
  maxResidentBuckets?: number;
  /** How long a state flush waits for writers before reporting them `missed`. */
  flushTimeoutMs?: number;
  /** Tombstones are kept for at least this many seqs; resumes from before get `reset`. */
  tombstoneRetainOps?: number;
  /** ...and at least this long by their HLC (default 30 days, see `BucketHostOptions`). */
  tombstoneRetainMs?: number;
  log?: RelayLog;
  /**
   * Announced in `welcome`: `socketPerBucket` makes clients open one socket per bucket at
   * `/v1/sync/<bucket>` (the edge relay, where a socket ends in one bucket's object);
   * `recvEvery` makes them report received bytes, for runtimes without `bufferedAmount`.
   */
  route?: { socketPerBucket?: boolean; recvEvery?: number };
  /**
   * Schemas the relay checks pushes against, by bucket name or pattern (`{ 'todo:*': s }`,
   * see `schemaLookup`), or a function from bucket name to schema. A pushed value its schema
   * refuses is rejected per op with `INVALID_VALUE` (HTTP imports included); the rest of the
   * push commits. Validators must be synchronous here.
   */
  schemas?: SchemaMap | ((bucket: string) => SchemaLike | undefined);
  /** Runs the group commit after the current batch of I/O (default `setImmediate`). */
  schedule?: (fn: () => void) => void;
}

/** One bucket's checkpoint and size, as `GET /v1/buckets/<bucket>/info` reports them. */
export interface BucketInfo {
  bucket: string;
  /** False until something was written to it (head seq 0): `mittsync export`/`inspect` say "not found". */
  exists: boolean;
  /** Identity of the bucket's log; changes when the relay's data is replaced. */
  epoch: string;
  /** Highest seq assigned (the checkpoint a replica that has everything holds). */
  head: number;
  /** Tombstones up to this seq are purged: resumes from before it reset. */
  horizon: number;
  /** Live entries (tombstones not counted). */
  entries: number;
  /** Live subscriptions on this relay instance. */
  subscribers: number;
  /** The asking token subject's reception counter: highest originSeq accepted from it (0: none). */
  received: number;
  /**
   * The bucket's replicas, when the relay reports them (an admin API that knows them may add
   * this; `mittsync inspect` prints the list when present).
   */
  replicas?: { replicaId: string; checkpoint?: number; lastSeen?: number; policy?: string }[];
}

/** A queued push: from a session (the ack goes to `conn`) or from HTTP (`resolve` gets it). */
interface PushJob extends Omit<SessionPush, 'conn'> {
  conn: HostConnection | undefined;
  resolve?: (ack: AckMsg) => void;
  reject?: (err: MittsyncError) => void;
}

type Outgoing =
  | { session: HostedSession; frame: Uint8Array | string; msg: ServerMessage }
  | { session: HostedSession; close: number; reason: string };

const now = (): number => globalThis.performance?.now() ?? Date.now();

function relaySchemas(
  s: RelayOptions['schemas'],
): ((bucket: string) => VersionedSchema | undefined) | undefined {
  if (s === undefined) return undefined;
  if (typeof s !== 'function') return schemaLookup(s);
  return (bucket) => {
    const found = s(bucket);
    return found === undefined ? undefined : toVersioned(found);
  };
}

/** Milliseconds from a monotonic clock where there is one (Date.now otherwise). */
function monotonicMs(): number {
  const perf = (globalThis as { performance?: { now(): number } }).performance;
  return perf === undefined ? Date.now() : perf.now();
}

function defaultSchedule(): (fn: () => void) => void {
  const g = globalThis as { setImmediate?: (fn: () => void) => unknown };
  if (typeof g.setImmediate === 'function') return (fn) => void g.setImmediate?.(fn);
  return (fn) => void setTimeout(fn, 0);
}

/**
 * The runtime-agnostic relay engine: resident bucket hosts (an LRU), group commit, sessions,
 * limits and metrics. {@link createRelayApp} puts HTTP and WebSocket routes in front of it;
 * runtime entries supply the storage and the socket upgrade.
 */
export class Relay implements SessionHost {
  readonly limits: RelayLimits;
  readonly metrics = new RelayMetrics();
  readonly auth: Authenticator;
  readonly env: Env;
  readonly log: RelayLog;
  /** HTTP page responses in flight, capped per principal and in all (`maxPagesInFlight*`). */
  readonly pageFlights: PageFlights;
  readonly route: { socketPerBucket?: boolean; recvEvery?: number } | undefined;
  private readonly stores: HostStoreProvider;
  private readonly maxResident: number;
  private readonly hostOpts: {
    flushTimeoutMs?: number;
    tombstoneRetainOps?: number;
    tombstoneRetainMs?: number;
    pageCache: { budget: PageCacheBudget };
  };
  private readonly schedule: (fn: () => void) => void;
  private readonly schemaOf: ((bucket: string) => VersionedSchema | undefined) | undefined;
  private readonly resident = new Map<string, BucketHost>();
  private readonly sessions = new Set<HostedSession>();
  private queue: PushJob[] = [];
  private scheduled = false;
  private readonly pageTurns: ((end: () => void) => void)[] = [];
  private pageTurnActive = false;
  private deferred: Outgoing[] | null = null;
  private nextSession = 1;
  private lastMsg: ServerMessage | undefined;
  private lastFrames: { msgpack?: Uint8Array; packed?: Uint8Array; json?: string } = {};
  private closedFlag = false;

  constructor(opts: RelayOptions) {
    this.stores = opts.stores;
    this.auth = opts.auth;
    this.limits = resolveLimits(opts.limits);
    this.pageFlights = new PageFlights(
      this.limits.maxPagesInFlight,
      this.limits.maxPagesInFlightPerPrincipal,
    );
    this.env = opts.env ?? systemEnv();
    this.log = opts.log ?? (() => undefined);
    this.maxResident = opts.maxResidentBuckets ?? 1000;
    this.route = opts.route;
    this.hostOpts = {
      ...(opts.flushTimeoutMs === undefined ? {} : { flushTimeoutMs: opts.flushTimeoutMs }),
      ...(opts.tombstoneRetainOps === undefined ? {} : { tombstoneRetainOps: opts.tombstoneRetainOps }),
      ...(opts.tombstoneRetainMs === undefined ? {} : { tombstoneRetainMs: opts.tombstoneRetainMs }),
      pageCache: { budget: new PageCacheBudget(opts.pageCacheBytes ?? DEFAULT_RELAY_PAGE_CACHE_BYTES) },
    };
    this.schedule = opts.schedule ?? defaultSchedule();
    this.schemaOf = relaySchemas(opts.schemas);
    this.metrics.pageFlights = this.pageFlights;
    this.metrics.gauges = {
      connections: () => this.sessions.size,
      residentBuckets: () => this.resident.size,
      commitQueueDepth: () => this.queue.length,
      outboundQueueBytes: () => {
        let n = 0;
        for (const s of this.sessions) n += s.socket.bufferedAmount;
        return n;
      },
      maxOutboundQueueBytes: () => {
        let n = 0;
        for (const s of this.sessions) n = Math.max(n, s.socket.bufferedAmount);
        return n;
      },
    };
  }

  /** True once {@link close} started: no new connections or requests. */
  get closed(): boolean {
    return this.closedFlag;
  }

  get connectionCount(): number {
    return this.sessions.size;
  }

  get residentCount(): number {
    return this.resident.size;
  }

  // -------------------------------------------------------------------------------------------
  // Hosts
  // -------------------------------------------------------------------------------------------

  /** The host of `bucket`, made resident if needed (and marked most recently used). */
  host(bucket: string): BucketHost {
    const h = this.resident.get(bucket);
    if (h !== undefined) {
      this.resident.delete(bucket);
      this.resident.set(bucket, h);
      return h;
    }
    const schema = this.schemaOf?.(bucket);
    const host = new BucketHost({
      bucket,
      ...(schema === undefined ? {} : { schema }),
      store: this.stores.open(bucket),
      env: this.env,
      limits: wireLimits(this.limits),
      maxBacklog: this.limits.maxOutboundBytes,
      maxPageBytes: this.limits.maxPageBytes,
      ...this.hostOpts,
      onCommit: ({ applied }) => {
        this.metrics.opsApplied += applied;
      },
    });
    this.resident.set(bucket, host);
    // Never the host being handed out: its caller is about to subscribe to or push through it.
    if (this.deferred === null) this.evict(bucket);
    return host;
  }

  /** Buckets with their sizes, for the admin API (where the storage can list them). */
  bucketSummaries(after: string | undefined, limit: number): BucketSummary[] {
    const list = this.stores.summaries;
    if (list === undefined) {
      throw new MittsyncError('INTERNAL', 'this relay cannot list its buckets (no bucket registry)');
    }
    return list.call(this.stores, after, limit);
  }

  /** The host of `bucket` if resident, without loading it. */
  peek(bucket: string): BucketHost | undefined {
    return this.resident.get(bucket);
  }

  /**
   * Drops idle hosts (no subscribers) past the resident bound, least recently used first. A
   * host is only dropped when nothing references it, so a bucket never has two live hosts.
   */
  private evict(keep?: string): void {
    let excess = this.resident.size - this.maxResident;
    if (excess <= 0) return;
    for (const [name, h] of this.resident) {
      if (excess <= 0) break;
      if (h.subscriberCount > 0 || name === keep) continue;
      this.resident.delete(name);
      excess--;
    }
  }

  /**
   * Waits for this caller's turn to build an HTTP page and resolves with the function that
   * ends it. Pages are built one at a time, in arrival order, each in its own turn of the event
   * loop, and after a page that took t ms the next waits t ms: page building gets at most half
   * of the event loop however many clients ask, and socket frames and commits run in between.
   * Requests waiting here hold their in-flight slot, so a flood of them meets the caps.
   */
  pageTurn(): Promise<() => void> {
    return new Promise((resolve) => {
      this.pageTurns.push(resolve);
      if (!this.pageTurnActive) {
        this.pageTurnActive = true;
        this.schedule(() => this.nextPageTurn());
      }
    });
  }

  private nextPageTurn(): void {
    const grant = this.pageTurns.shift();
    if (grant === undefined) {
      this.pageTurnActive = false;
      return;
    }
    const started = monotonicMs();
    let ended = false;
    grant(() => {
      if (ended) return;
      ended = true;
      if (this.pageTurns.length === 0) {
        this.pageTurnActive = false;
        return;
      }
      const took = monotonicMs() - started;
      if (took >= 1) this.env.setTimeout(() => this.nextPageTurn(), took);
      else this.schedule(() => this.nextPageTurn());
    });
  }

  /** Serves one page of `bucket`; a `reset` when `epoch` is given and differs. */
  page(bucket: string, req: PageReqMsg, epoch?: string, spec?: ReplicationSpec): PageMsg | ResetMsg {
    const host = this.host(bucket);
    if (epoch !== undefined && epoch !== host.state.epoch) {
      return { type: 'reset', bucket, subId: -1, epoch: host.state.epoch, reason: 'epoch' };
    }
    return host.page({ ...req, limit: Math.min(req.limit, this.limits.maxPageEntries) }, spec) as
      | PageMsg
      | ResetMsg;
  }

  /**
   * What `GET /v1/buckets/<bucket>/info` answers: the bucket's checkpoint (epoch, head seq,
   * tombstone horizon), its live entry count (the checksum's), its live subscribers, and the
   * reception counter of `replicaId` (where an importer's originSeqs continue).
   */
  info(bucket: string, replicaId: string): BucketInfo {
    const host = this.host(bucket);
    const m = host.state;
    return {
      bucket,
      exists: m.head > 0,
      epoch: m.epoch,
      head: m.head,
      horizon: m.horizon,
      entries: m.sum.count,
      subscribers: host.subscriberCount,
      received: host.receivedFrom(replicaId),
    };
  }

  // -------------------------------------------------------------------------------------------
  // Group commit
  // -------------------------------------------------------------------------------------------

  /**
   * Queues a push for the next group commit: every push that arrives in the same turn of the
   * event loop, from any socket and bucket, commits in one transaction; acks, deliveries and
   * flush results go out only after that commit. Resolves with the ack.
   */
  push(
    bucket: string,
    replicaId: string,
    msg: PushMsg,
    conn?: HostConnection,
    prefixes?: readonly string[],
  ): Promise<AckMsg> {
    return new Promise((resolve, reject) =>
      this.enqueue({
        bucket,
        replicaId,
        msg,
        conn,
        resolve,
        reject,
        ...(prefixes === undefined ? {} : { prefixes }),
      }),
    );
  }

  /** Like {@link push} without a promise: the ack goes to `conn`. */
  enqueue(job: PushJob): void {
    if (this.closedFlag) {
      job.reject?.(new MittsyncError('CLOSED', 'relay is shutting down'));
      return;
    }
    this.metrics.opsIn += job.msg.ops.length;
    this.queue.push(job);
    if (!this.scheduled) {
      this.scheduled = true;
      this.schedule(() => this.commitQueued());
    }
  }

  /** Commits every queued push now (also used at shutdown). */
  commitQueued(): void {
    this.scheduled = false;
    const jobs = this.queue;
    if (jobs.length === 0) return;
    this.queue = [];
    const deferred: Outgoing[] = [];
    this.deferred = deferred;
    const results: (AckMsg | MittsyncError)[] = new Array(jobs.length);
    const started = now();
    let failure: unknown;
    try {
      this.stores.transaction(() => {
        jobs.forEach((job, i) => {
          try {
            results[i] = this.host(job.bucket).push(
              job.replicaId,
              job.msg,
              job.conn,
              job.prefixes === undefined ? undefined : { prefixes: job.prefixes },
            );
          } catch (e) {
            // This push rolled back to its savepoint; the others still commit.
            results[i] = toMittsyncError(e);
          }
        });
      });
    } catch (e) {
      failure = e;
    }
    this.metrics.commit(now() - started);
    this.deferred = null;
    if (failure !== undefined) {
      this.commitFailed(jobs, failure);
      return;
    }
    for (const out of deferred) this.flushOutgoing(out);
    jobs.forEach((job, i) => {
      const r = results[i];
      if (r instanceof MittsyncError) {
        this.log('error', 'push failed', { bucket: job.bucket, code: r.code, message: r.message });
        job.reject?.(r);
      } else if (r !== undefined) job.resolve?.(r);
    });
    this.evict();
  }

  /**
   * The whole batch rolled back (disk full, I/O error): nothing was acked or delivered. The
   * hosts' in-memory heads ran ahead of storage, so reload them from storage and make their
   * subscribers resume; the writers re-push from their outboxes.
   */
  private commitFailed(jobs: PushJob[], cause: unknown): void {
    const err = new MittsyncError('STORAGE_UNAVAILABLE', 'the relay could not commit; retry later', {
      cause,
    });
    this.log('error', 'group commit failed', { message: toMittsyncError(cause).message });
    const buckets = new Set(jobs.map((j) => j.bucket));
    for (const b of buckets) {
      this.resident.delete(b);
      for (const s of this.sessions) s.dropBucket(b, 'STORAGE_UNAVAILABLE');
    }
    for (const job of jobs) {
      job.conn?.send({ type: 'error', code: err.code, message: err.message, bucket: job.bucket });
      job.reject?.(err);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Sessions and outbound frames
  // -------------------------------------------------------------------------------------------

  /**
   * Accepts an upgraded socket, authenticated as `principal` by the token of its upgrade
   * request (there is no other way in).
   */
  accept(
    socket: RelaySocket,
    info: { address: string; principal: Principal; bucket?: string; id?: string },
  ): SocketHandler {
    const session = new Session(
      this,
      socket,
      info.id ?? `s${this.nextSession++}`,
      info.principal,
      info.bucket === undefined ? {} : { bucket: info.bucket },
    );
    if (this.closedFlag) {
      socket.close(1012, 'relay restarting');
      return { message: () => undefined, close: () => undefined };
    }
    this.sessions.add(session);
    this.metrics.connectionsOpened++;
    session.remember();
    return session;
  }

  /**
   * Rebuilds the session of a socket that outlived this relay's memory (a Durable Object woken
   * from hibernation) from the snapshot its runtime kept with the socket.
   */
  restore(socket: RelaySocket, snapshot: SessionSnapshot): SocketHandler {
    // Hosts key connections by session id: a session accepted after this one must not get its
    // id again (this relay's counter started over; the restored id came from the previous one).
    const n = /^s(\d+)$/.exec(snapshot.id);
    if (n !== null) this.nextSession = Math.max(this.nextSession, Number(n[1]) + 1);
    const session = Session.restore(this, socket, snapshot);
    this.sessions.add(session);
    return session;
  }

  /** @internal Called by a session when it ends. */
  forget(session: HostedSession): void {
    this.sessions.delete(session);
  }

  /** Encodes once per message: a delivery fanned out to many sockets shares its frame. */
  private encode(msg: ServerMessage, format: WireFormat, packOps: boolean): Uint8Array | string {
    if (msg !== this.lastMsg) {
      this.lastMsg = msg;
      this.lastFrames = {};
    }
    if (format === 'json') {
      this.lastFrames.json ??= new TextDecoder().decode(encodeFrame(msg, 'json'));
      return this.lastFrames.json;
    }
    // Only delivers differ when packed: everything else shares the plain frame.
    if (packOps && msg.type === 'deliver') {
      this.lastFrames.packed ??= encodeFrame(msg, 'msgpack', { packOps: true });
      return this.lastFrames.packed;
    }
    this.lastFrames.msgpack ??= encodeFrame(msg);
    return this.lastFrames.msgpack;
  }

  /** @internal Sends a message to a session's socket, after the open commit if there is one. */
  sendTo(session: HostedSession, msg: ServerMessage, format: WireFormat, packOps = false): void {
    const frame = this.encode(msg, format, packOps);
    if (this.deferred !== null) this.deferred.push({ session, frame, msg });
    else this.flushOutgoing({ session, frame, msg });
  }

  /** @internal Closes a session's socket, after the open commit if there is one. */
  closeSocket(session: HostedSession, code: number, reason: string): void {
    if (this.deferred !== null) this.deferred.push({ session, close: code, reason });
    else this.flushOutgoing({ session, close: code, reason });
  }

  private flushOutgoing(out: Outgoing): void {
    if ('close' in out) {
      out.session.socket.close(out.close, out.reason);
      return;
    }
    if (!out.session.writable) return;
    const m = this.metrics;
    m.framesOut++;
    const msg = out.msg;
    if (msg.type === 'deliver') m.opsOut += msg.ops.length;
    else if (msg.type === 'error') m.reject(msg.code);
    else if (msg.type === 'ack' && msg.rejected !== undefined) for (const r of msg.rejected) m.reject(r.code);
    out.session.socket.send(out.frame);
    if (out.session.socket.bufferedAmount > 2 * this.limits.maxOutboundBytes) out.session.slowConsumer();
  }

  /**
   * Graceful shutdown: refuse new work, commit what is queued (its acks go out), then close
   * every socket with 1012 so clients reconnect with backoff, and close storage.
   */
  close(): void {
    if (this.closedFlag) return;
    this.commitQueued();
    this.closedFlag = true;
    for (const s of [...this.sessions]) s.shutdown(1012, 'relay restarting');
    this.resident.clear();
    this.stores.close?.();
  }
}
