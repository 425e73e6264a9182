import { ApplyingCommits, type ApplyingListener } from './applying';
import {
  type BucketState,
  type BucketStatus,
  bucketStatus,
  clearTimers,
  newBucketState,
  type ReadyInfo,
} from './bucket-state';
import { CatchUpRunner } from './catch-up';
import { CheckpointReporter } from './checkpoint-report';
import { type ConnectionState, RelayConnection } from './connection';
import { backoffDelay, type Env, randomId, systemEnv } from './env';
import { MittsyncError, toMittsyncError } from './errors';
import { HlcClock } from './hlc';
import { LiveStream } from './live';
import {
  checkWritable,
  checkWrite,
  commitWrites,
  type LocalWriteContext,
  type SchemaGuard,
  type Write,
} from './local-writes';
import { DEFAULT_MITT_BOUNDS, type MittBounds } from './mitt';
import type { Entry, Op, Value } from './model';
import { Outbox } from './outbox';
import { PageRequests } from './page-requests';
import {
  PROTOCOL_VERSION,
  type ServerMessage,
  SUBSCRIPTION_POLICIES,
  type SubscriptionPolicy,
  type WireLimits,
} from './protocol';
import { ReplicaBucket, typedValuesFor } from './replica-bucket';
import type { SchemaInput, SchemaLike, SchemaOutput } from './schema';
import { type ReplicationSpec, validateSpec } from './spec';
import { changeSpec, checkInSpec } from './spec-change';
import { newBucketMeta, policyOf, type ReplicaStorage, type ScanQuery } from './storage';
import type { ChangeSource, SyncContext } from './sync-context';
import type { TypedValues } from './typed-values';
import { DEFAULT_LIMITS, isBucketName } from './validate';

export type { ConnectionState } from './connection';
export type { Write } from './local-writes';
export type { PageFetcher } from './page-requests';
export type { ChangeSource } from './sync-context';

import type { AckLevel, BucketOptions, OpenBucketOptions, ReplicaOptions } from './replica-options';

export type { AckLevel, BucketOptions, OpenBucketOptions, ReplicaOptions } from './replica-options';

export type ChangeListener = (bucket: string, entries: readonly Entry[], source: ChangeSource) => void;

export interface ReplicaStatus {
  replicaId: string;
  connection: ConnectionState;
  buckets: BucketStatus[];
  persistent: boolean;
}

/**
 * A replica of some buckets: local reads and writes at storage speed, synced with a relay in
 * the background. Runtime-agnostic: the browser worker hosts one on IndexedDB, a Node process
 * on memory storage, the simulator many at once.
 *
 * The class owns the local API, the connection lifecycle (its mechanics are in
 * `RelayConnection`) and the dispatch of relay frames; the sync work itself is in modules
 * over `BucketState` that it wires together: `CatchUpRunner` (subscribe, download, merge,
 * state flush, ready), `LiveStream` (the mitt, gaps, applying live ops, checksums), `Outbox`
 * (pushes, acks, refusals, originSeq reconciliation) and `commitWrites` (local writes). Each
 * gets a narrow context (see `SyncContext`), never the replica itself.
 *
 * @example
 * ```ts
 * const replica = await Replica.open({ storage: new MemoryReplicaStorage(), transport });
 * await replica.openBucket('todos');
 * await replica.put('todos', 't1', { title: 'milk' }, { ack: 'relay' });
 * await replica.whenReady('todos');
 * ```
 */
export class Replica {
  readonly replicaId: string;
  private readonly storage: ReplicaStorage;
  private readonly conn: RelayConnection;
  private readonly env: Env;
  private readonly backoff: { baseMs: number; capMs: number };
  private readonly catchUp: CatchUpRunner;
  private readonly live: LiveStream;
  /** Reports durable checkpoints to the relay (`ckpt`), for its tombstone GC. */
  private readonly ckpts: CheckpointReporter;
  private readonly outbox: Outbox;
  private readonly pages: PageRequests;
  private readonly writes: LocalWriteContext;
  private readonly buckets = new Map<string, BucketState>();
  private readonly opening = new Map<string, Promise<BucketState>>();
  private readonly changeListeners = new Map<ChangeListener, ((bucket: string) => boolean) | undefined>();
  /** Applying listeners and the commits announced to them (reads wait for those). */
  private readonly applying = new ApplyingCommits();
  private readonly statusListeners = new Set<(s: ReplicaStatus) => void>();
  private readonly readyListeners = new Set<(info: ReadyInfo) => void>();
  /** Schemas of typed handles (`bucket()`), reported in their buckets' status. */
  private readonly schemas = new Map<string, TypedValues>();
  private limits: WireLimits = DEFAULT_LIMITS;
  private closed = false;
  private tail: Promise<unknown> = Promise.resolve();

  private constructor(opts: ReplicaOptions, replicaId: string, clock: HlcClock, env: Env) {
    this.replicaId = replicaId;
    this.storage = opts.storage;
    this.env = env;
    this.backoff = opts.backoff ?? { baseMs: 250, capMs: 30_000 };
    this.conn = new RelayConnection(
      opts.transport,
      env,
      replicaId,
      { pingIntervalMs: opts.pingIntervalMs ?? 15_000, backoff: this.backoff },
      {
        connecting: () => this.emitStatus(),
        message: (msg) => this.onMessage(msg),
        probe: () => this.probe(),
        down: () => this.onDisconnect(),
      },
    );
    const requestTimeoutMs = opts.requestTimeoutMs ?? 15_000;
    const bounds: MittBounds = { ...DEFAULT_MITT_BOUNDS, ...opts.mitt };
    // The modules reach each other through these arrows (built before the fields are set).
    const ctx: SyncContext = {
      env,
      storage: opts.storage,
      clock,
      send: (msg) => this.conn.send(msg),
      isOpen: () => this.conn.state === 'open',
      emitChange: (bucket, changed, source) => this.emitChange(bucket, changed, source),
      emitApplying: (bucket, entries, committed) => this.applying.emit(bucket, entries, committed),
      emitStatus: () => this.emitStatus(),
      fail: (b, err) => this.fail(b, err),
      serial: (fn) => this.serial(fn),
      syncTask: (b, fn) => this.syncTask(b, fn),
    };
    const rejoin = (b: BucketState) => this.catchUp.rejoin(b);
    this.pages = new PageRequests(env, ctx.send, requestTimeoutMs);
    this.ckpts = new CheckpointReporter(env, ctx.send, ctx.isOpen);
    this.outbox = new Outbox(
      { ...ctx, limits: () => this.limits, rejoin },
      {
        pushBatch: opts.pushBatch ?? 500,
        pushWindow: opts.pushWindow ?? 10_000,
        ackTimeoutMs: opts.ackTimeoutMs ?? 5_000,
      },
    );
    this.live = new LiveStream(
      {
        ...ctx,
        resubscribe: (b) => this.catchUp.subscribe(b),
        tryFinish: (b, cu) => this.catchUp.tryFinish(b, cu),
        rejoin,
        checkpointed: (b) => this.ckpts.note(b.name, b.meta.checkpoint),
      },
      { bounds, gapTimeoutMs: opts.gapTimeoutMs ?? 1_000 },
    );
    const fetchPage = opts.fetchPage ?? ((req) => this.pages.fetch(req));
    this.catchUp = new CatchUpRunner(
      {
        ...ctx,
        welcomed: () => this.conn.welcomed,
        fetchPage,
        emitReady: (info) => {
          for (const l of this.readyListeners) l(info);
        },
        live: this.live,
        outbox: this.outbox,
      },
      {
        bounds,
        pageSize: opts.pageSize ?? 4000,
        parallelRanges: opts.parallelRanges ?? 4,
        requestTimeoutMs,
        backoff: this.backoff,
      },
    );
    this.writes = { ...ctx, replicaId, catchUp: this.catchUp, outbox: this.outbox };
  }

  /**
   * Opens a replica on `storage`: restores its identity and clock floor (or creates them),
   * loads every known bucket with its outbox, and connects unless `autoConnect` is false.
   */
  static async open(opts: ReplicaOptions): Promise<Replica> {
    const env = opts.env ?? systemEnv();
    let identity = await opts.storage.open();
    if (identity === null) {
      identity = { replicaId: opts.replicaId ?? `r${randomId(env.random, 15)}`, clock: null };
      await opts.storage.saveIdentity(identity);
    }
    const clock = new HlcClock(identity.replicaId, env.now, identity.clock ?? undefined);
    const replica = new Replica(opts, identity.replicaId, clock, env);
    for (const meta of await opts.storage.listBuckets()) {
      const outbox = await opts.storage.loadOutbox(meta.bucket);
      replica.buckets.set(meta.bucket, newBucketState(meta, outbox));
    }
    if (opts.autoConnect !== false) replica.connect();
    return replica;
  }

  // -------------------------------------------------------------------------------------------
  // Local API
  // -------------------------------------------------------------------------------------------

  /**
   * Starts syncing `bucket` (idempotent). Writes open their bucket implicitly, as `replica`
   * for a new bucket.
   *
   * @example
   * ```ts
   * await replica.openBucket('prices', { policy: 'copy' });
   * await replica.whenReady('prices'); // a consistent copy, detached
   * await replica.refresh('prices'); // later: only what changed since
   * ```
   */
  async openBucket(bucket: string, opts?: OpenBucketOptions): Promise<void> {
    const want = opts?.policy;
    if (want !== undefined && !SUBSCRIPTION_POLICIES.includes(want)) {
      throw new MittsyncError('BAD_MESSAGE', `unknown policy ${JSON.stringify(want)}`);
    }
    const spec = opts?.spec === undefined || opts.spec === null ? opts?.spec : validateSpec(opts.spec);
    const b = await this.bucketState(bucket, want, spec ?? undefined);
    if (spec !== undefined) await this.setSpec(bucket, spec);
    if (want === undefined || want === policyOf(b.meta)) return;
    await this.serial(async () => {
      const from = policyOf(b.meta);
      if (want === from) return;
      if (b.outbox.length > 0) {
        throw new MittsyncError(
          'POLICY_CONFLICT',
          from === 'copy'
            ? `bucket ${bucket} has ${b.outbox.length} local fork writes: a copy cannot become ${want}`
            : `bucket ${bucket} has ${b.outbox.length} writes the relay has not acknowledged: wait for them before opening it as ${want}`,
          { detail: { bucket, policy: from, wanted: want, pending: b.outbox.length } },
        );
      }
      const meta = { ...b.meta, policy: want };
      await this.storage.commit({ bucket, meta });
      b.meta = meta;
    });
    b.refreshing = false;
    if (b.phase === 'detached') b.phase = 'idle';
    // The relay learns the new policy from a new `sub` (a copy detaches instead).
    this.catchUp.subscribe(b);
    this.emitStatus();
  }

  /**
   * Brings a `copy` up to date: resumes from its checkpoint with a state flush, so only the
   * entries changed since (tombstones included) are sent, then detaches again. Resolves when
   * it is ready; waits for a connection when offline. For a `replica` or `readOnly` bucket
   * (always live) it is {@link whenReady}.
   */
  async refresh(bucket: string): Promise<ReadyInfo> {
    const b = await this.bucketState(bucket);
    if (policyOf(b.meta) !== 'copy' || !b.meta.ready) return this.whenReady(bucket);
    const done = new Promise<ReadyInfo>((resolve) => b.readyWaiters.push(resolve));
    if (!b.refreshing) {
      b.refreshing = true;
      this.catchUp.subscribe(b);
    }
    return done;
  }

  /**
   * Changes the spec `bucket` is held with, live: widening downloads only the newly covered
   * keys (the live stream catches their ops meanwhile), narrowing drops the keys no longer
   * covered; neither downloads again what the replica holds. A new projection (`fields`)
   * re-joins. `null`: the whole bucket. Fails with `POLICY_CONFLICT` while writes outside the
   * new spec are pending.
   */
  async setSpec(bucket: string, spec: ReplicationSpec | null): Promise<void> {
    const next = spec === null ? undefined : validateSpec(spec);
    const b = await this.bucketState(bucket);
    const change = await this.serial(() => changeSpec(this.storage, b, next));
    if (change === 'none') return;
    b.relaySpec = undefined;
    if (b.phase === 'detached') b.phase = 'idle';
    this.catchUp.subscribe(b);
    this.emitStatus();
  }

  private bucketState(
    bucket: string,
    policy?: SubscriptionPolicy,
    spec?: ReplicationSpec,
  ): Promise<BucketState> {
    const existing = this.buckets.get(bucket);
    if (existing !== undefined) return Promise.resolve(existing);
    if (!isBucketName(bucket)) {
      return Promise.reject(new MittsyncError('BAD_MESSAGE', `bad bucket name ${JSON.stringify(bucket)}`));
    }
    let p = this.opening.get(bucket);
    if (p === undefined) {
      p = this.serial(async () => {
        const loaded = await this.storage.loadBucket(bucket);
        const meta = loaded ?? { ...newBucketMeta(bucket, policy), ...(spec === undefined ? {} : { spec }) };
        if (loaded === undefined) await this.storage.commit({ bucket, meta });
        const b = newBucketState(meta, await this.storage.loadOutbox(bucket));
        this.buckets.set(bucket, b);
        this.opening.delete(bucket);
        if (this.conn.welcomed) this.catchUp.subscribe(b);
        return b;
      });
      this.opening.set(bucket, p);
      // A failed open (storage trouble) must not stick: the next call tries again.
      p.catch(() => this.opening.delete(bucket));
    }
    return p;
  }

  /**
   * A handle on `bucket` (opened for sync), typed by `opts.schema` when given: writes are
   * checked against it, reads come back as its output type (see {@link ReplicaBucket}). The
   * bucket's `status().schema` then reports the schema version and values that do not fit.
   *
   * @example
   * ```ts
   * const todos = replica.bucket('todos', { schema: defineSchema({ version: 2, schema, migrations }) });
   * await todos.put('t1', { title: 'milk', done: false });
   * ```
   */
  bucket<S extends SchemaLike>(
    bucket: string,
    opts: BucketOptions<S> & { schema: S },
  ): ReplicaBucket<SchemaOutput<S>, SchemaInput<S>>;
  bucket<T = Value>(bucket: string, opts?: OpenBucketOptions): ReplicaBucket<T, T>;
  bucket(bucket: string, opts?: BucketOptions): ReplicaBucket<unknown, unknown> {
    const typed = typedValuesFor<unknown>(bucket, opts?.schema);
    if (typed !== undefined) this.schemas.set(bucket, typed);
    const { schema: _schema, ...open } = opts ?? {};
    return new ReplicaBucket(this, bucket, typed, open);
  }

  /** Sets `key` to `value`. Resolves once stored locally, or acknowledged by the relay with `ack: 'relay'`. */
  async put(bucket: string, key: string, value: Value, opts?: { ack?: AckLevel }): Promise<Op> {
    const [op] = await this.transact(bucket, [{ key, value }], opts);
    return op as Op;
  }

  /** Deletes `key` (writes a tombstone). */
  async del(bucket: string, key: string, opts?: { ack?: AckLevel }): Promise<Op> {
    const [op] = await this.transact(bucket, [{ key, delete: true }], opts);
    return op as Op;
  }

  /**
   * Applies several writes atomically: one storage transaction, consecutive originSeqs.
   * Resolves with the ops written (their `hlc` is the version each write got). With
   * `schemaVersion` (typed buckets), a set over a value of a newer schema version fails with
   * `SCHEMA_OUTDATED` and nothing is written, unless `overwriteNewer`.
   */
  async transact(
    bucket: string,
    writes: readonly Write[],
    opts?: { ack?: AckLevel } & Partial<SchemaGuard>,
  ): Promise<readonly Op[]> {
    if (this.closed) throw new MittsyncError('CLOSED', 'replica is closed');
    const prepared = writes.map((w) => checkWrite(w, this.limits));
    const b = await this.bucketState(bucket);
    checkWritable(b);
    const guard: SchemaGuard | undefined =
      opts?.schemaVersion === undefined
        ? undefined
        : { schemaVersion: opts.schemaVersion, overwriteNewer: opts.overwriteNewer === true };
    // Checked in turn with spec changes, so no write lands outside a spec just narrowed.
    const ops = await this.serial(() => {
      checkInSpec(b, prepared);
      return commitWrites(this.writes, b, prepared, guard);
    });
    if (opts?.ack === 'relay')
      await Promise.all(ops.map((op) => this.outbox.whenAcknowledged(b, op.originSeq)));
    return ops;
  }

  /** The live entry at `key`, or undefined (absent or deleted). */
  async get(bucket: string, key: string): Promise<Entry | undefined> {
    await this.applying.settled(bucket);
    const [e] = await this.storage.getEntries(bucket, [key]);
    return e === undefined || e.deleted ? undefined : e;
  }

  /** Live entries at `keys`, in order. */
  async getMany(bucket: string, keys: readonly string[]): Promise<(Entry | undefined)[]> {
    await this.applying.settled(bucket);
    const out = await this.storage.getEntries(bucket, keys);
    return out.map((e) => (e === undefined || e.deleted ? undefined : e));
  }

  /** Live entries by prefix or range, in key order. */
  async scan(bucket: string, query: ScanQuery): Promise<Entry[]> {
    await this.applying.settled(bucket);
    return this.storage.scan(bucket, query);
  }

  /**
   * Resolves when `bucket` has completed a catch-up on the current connection (or already had).
   * A detached `copy` is ready as of its checkpoint, connected or not.
   */
  async whenReady(bucket: string): Promise<ReadyInfo> {
    const b = await this.bucketState(bucket);
    if (b.phase === 'ready' && b.lastReady !== null) return b.lastReady;
    if (b.phase === 'detached') {
      return b.lastReady ?? { bucket, checkpoint: b.meta.checkpoint, covered: [], missed: [], flush: 'none' };
    }
    return new Promise((resolve) => b.readyWaiters.push(resolve));
  }

  /**
   * Listens to every change of stored entries (in the buckets `wants` accepts, when given: a
   * bulk download's entries are then only made for a listener that wants them); returns the
   * unsubscribe function.
   */
  onChange(listener: ChangeListener, wants?: (bucket: string) => boolean): () => void {
    this.changeListeners.set(listener, wants);
    return () => this.changeListeners.delete(listener);
  }

  /**
   * Listens to live entries as soon as they won against storage, while their commit runs (a
   * storage round trip before {@link onChange} hears of them): for views that show remote
   * changes at once. Their change event follows once they are stored; reads (`get`, `scan`)
   * made after this event wait for that commit, so they never miss what a view showed. The
   * checkpoint moves only with the commit. Returns the unsubscribe function.
   */
  onApplying(listener: ApplyingListener, wants?: (bucket: string) => boolean): () => void {
    return this.applying.on(listener, wants);
  }

  /** Called each time a bucket completes a catch-up (join or resume). */
  onReady(listener: (info: ReadyInfo) => void): () => void {
    this.readyListeners.add(listener);
    return () => this.readyListeners.delete(listener);
  }

  /** Listens to status changes (connection, phases, progress, pending, errors). */
  onStatus(listener: (s: ReplicaStatus) => void): () => void {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
  }

  status(): ReplicaStatus;
  status(bucket: string): BucketStatus | undefined;
  status(bucket?: string): ReplicaStatus | BucketStatus | undefined {
    if (bucket !== undefined) {
      const b = this.buckets.get(bucket);
      return b === undefined ? undefined : this.withSchema(bucketStatus(b));
    }
    return {
      replicaId: this.replicaId,
      connection: this.conn.state,
      buckets: [...this.buckets.values()].map((b) => this.withSchema(bucketStatus(b))),
      persistent: this.storage.persistent,
    };
  }

  private withSchema(s: BucketStatus): BucketStatus {
    const typed = this.schemas.get(s.bucket);
    return typed === undefined ? s : { ...s, schema: typed.status() };
  }

  /** Stops syncing, waits for queued storage work, closes storage. Pending writes stay in the outbox. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const b of this.buckets.values()) clearTimers(b, this.env);
    this.pages.rejectAll(new MittsyncError('CLOSED', 'replica closed'));
    this.conn.close();
    await this.tail.catch(() => undefined);
    for (const b of this.buckets.values()) {
      this.outbox.rejectWaiters(
        b,
        new MittsyncError('CLOSED', 'replica closed before the relay acknowledged'),
      );
    }
    await this.storage.close();
  }

  // -------------------------------------------------------------------------------------------
  // Plumbing (what the modules get through their contexts)
  // -------------------------------------------------------------------------------------------

  /**
   * Runs sync work on the serial queue. If it fails (storage full, lost, broken), whatever it
   * took off the stream is not applied: report the error and resume from the last durable
   * checkpoint after a backoff, so the checkpoint never runs ahead of the data.
   */
  private syncTask(b: BucketState, fn: () => Promise<void>): void {
    const subId = b.subId;
    this.serial(fn).catch((e: unknown) => {
      const err = toMittsyncError(e, 'STORAGE_UNAVAILABLE');
      this.fail(b, err);
      b.storageFailures++;
      const delay = backoffDelay(b.storageFailures, this.env.random, this.backoff.baseMs, this.backoff.capMs);
      this.env.setTimeout(() => {
        if (b.subId === subId && !this.closed) this.catchUp.subscribe(b);
      }, delay);
      b.mitt = null; // stop taking live ops until the resume
    });
  }

  /** Runs storage work one task at a time, in submission order. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  private emitChange(
    bucket: string,
    changed: readonly Entry[] | (() => readonly Entry[]),
    source: ChangeSource,
  ): void {
    let entries = typeof changed === 'function' ? undefined : changed;
    for (const [l, wants] of this.changeListeners) {
      if (wants !== undefined && !wants(bucket)) continue;
      entries ??= (changed as () => readonly Entry[])();
      if (entries.length > 0) l(bucket, entries, source);
    }
  }

  private emitStatus(): void {
    if (this.statusListeners.size === 0) return;
    const s = this.status();
    for (const l of this.statusListeners) l(s);
  }

  private fail(b: BucketState, err: MittsyncError): void {
    b.lastError = { code: err.code, message: err.message };
    this.emitStatus();
  }

  // -------------------------------------------------------------------------------------------
  // Connection lifecycle and dispatch
  // -------------------------------------------------------------------------------------------

  /** Connects (or reconnects) to the relay; called by `open` unless `autoConnect` is false. */
  connect(): void {
    this.conn.connect();
  }

  /** Drops the connection now; with `reconnect: false` it stays down until `connect()`. */
  disconnect(opts?: { reconnect?: boolean }): void {
    this.conn.disconnect(opts);
  }

  /** The connection dropped: requests fail, subscriptions end, pushes wait for the next one. */
  private onDisconnect(): void {
    this.ckpts.reset();
    this.pages.rejectAll(new MittsyncError('CLOSED', 'connection closed'));
    for (const b of this.buckets.values()) {
      clearTimers(b, this.env);
      this.outbox.hold(b);
      this.catchUp.stop(b);
    }
    this.emitStatus();
  }

  /** A head the relay reported last time that we still haven't reached: the stream's tail was lost. */
  private probe(): void {
    for (const b of this.buckets.values()) {
      if (b.mitt !== null && b.mitt.upTo < b.probedHead) this.catchUp.subscribe(b);
    }
  }

  private onMessage(msg: ServerMessage): void {
    if (msg.type === 'welcome') {
      if (msg.v !== PROTOCOL_VERSION) {
        this.conn.disconnect();
        return;
      }
      this.limits = msg.limits;
      this.conn.welcome();
      for (const b of this.buckets.values()) this.catchUp.subscribe(b);
      this.emitStatus();
      return;
    }
    if (msg.type === 'authed') return; // the transport's token refresh
    if (msg.type === 'pong') {
      this.conn.answered();
      for (const [name, head] of Object.entries(msg.heads)) {
        const b = this.buckets.get(name);
        if (b !== undefined) b.probedHead = head;
      }
      return;
    }
    if (msg.type === 'error') {
      const b = msg.bucket === undefined ? undefined : this.buckets.get(msg.bucket);
      const err = new MittsyncError(msg.code, msg.message);
      if (msg.reqId !== undefined) this.pages.reject(msg.reqId, err);
      if (b !== undefined) {
        this.fail(b, err);
        if (msg.reqId === undefined) this.outbox.onError(b, err);
      }
      return;
    }
    if (msg.type === 'page') {
      this.pages.settle(msg.reqId, msg);
      return;
    }
    const b = this.buckets.get(msg.bucket);
    if (b === undefined) return;
    switch (msg.type) {
      case 'subscribed':
        this.catchUp.onSubscribed(b, msg);
        return;
      case 'reset':
        if (msg.subId === b.subId || msg.subId === -1) this.catchUp.rejoin(b);
        return;
      case 'deliver':
        this.live.deliver(b, msg);
        return;
      case 'ack':
        this.outbox.onAck(b, msg);
        return;
      case 'marker':
        this.outbox.answerMarker(b, msg.flushId);
        return;
      case 'flushed':
        this.catchUp.onFlushed(b, msg);
        return;
      case 'resync':
        this.catchUp.subscribe(b);
        return;
    }
  }
}
