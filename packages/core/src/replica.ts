import {
  type ArrivedPage,
  type BucketState,
  type BucketStatus,
  bucketStatus,
  type CatchUp,
  type MergedSpan,
  newBucketState,
  type ReadyInfo,
} from './bucket-state';
import { checksumEquals, checksumReplace, emptyChecksum } from './checksum';
import {
  type ColumnRange,
  checksumAddIn,
  columnEntries,
  columnSize,
  type EntryColumns,
  hlcAt,
  indexIn,
  isTombstoneIn,
  keyAt,
  littleEndian,
  maxHlcIn,
  rangeEntries,
} from './columns';
import { backoffDelay, type Env, randomId, systemEnv } from './env';
import { MittsyncError, toMittsyncError } from './errors';
import { HlcClock } from './hlc';
import { DEFAULT_MITT_BOUNDS, downloadedWins, Mitt, type MittBounds } from './mitt';
import {
  type Entry,
  type Op,
  opToEntry,
  type SeqOp,
  type Value,
  type Version,
  versionOf,
  wins,
} from './model';
import {
  type AckMsg,
  type ClientMessage,
  type DeliverMsg,
  type FlushedMsg,
  type PageMsg,
  type PageReqMsg,
  PROTOCOL_VERSION,
  type ResetMsg,
  type ServerMessage,
  type SubscribedMsg,
  type WireLimits,
} from './protocol';
import { type BucketMeta, newBucketMeta, type ReplicaStorage, type ScanQuery } from './storage';
import type { Transport } from './transport';
import { DEFAULT_LIMITS, isBucketName, measureValue, utf8Length } from './validate';

/** Fetches one catch-up page some other way than the socket (HTTP, tests). */
export type PageFetcher = (req: PageReqMsg) => Promise<PageMsg | ResetMsg>;

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

/** One write of a {@link Replica.transact} batch. */
export type Write = { key: string; value: Value } | { key: string; delete: true };

/** Who changed entries: this replica's own writes or the relay's stream and downloads. */
export type ChangeSource = 'local' | 'remote';
export type ChangeListener = (bucket: string, entries: readonly Entry[], source: ChangeSource) => void;

export type ConnectionState = 'connecting' | 'open' | 'closed';

export interface ReplicaStatus {
  replicaId: string;
  connection: ConnectionState;
  buckets: BucketStatus[];
  persistent: boolean;
}

interface PendingPage {
  bucket: string;
  subId: number;
  resolve(msg: PageMsg | ResetMsg): void;
  reject(err: MittsyncError): void;
  timer: unknown;
}

/**
 * A replica of some buckets: local reads and writes at storage speed, synced with a relay in
 * the background. Runtime-agnostic: the browser worker hosts one on IndexedDB, a Node process
 * on memory storage, the simulator many at once.
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
  private readonly transport: Transport;
  private readonly env: Env;
  private readonly clock: HlcClock;
  private readonly bounds: MittBounds;
  private readonly pageSize: number;
  private readonly parallel: number;
  private readonly pushBatch: number;
  private readonly pushWindow: number;
  private readonly ackTimeoutMs: number;
  private readonly gapTimeoutMs: number;
  private readonly requestTimeoutMs: number;
  private readonly pingIntervalMs: number;
  private readonly backoff: { baseMs: number; capMs: number };
  private readonly fetchPageOverride: PageFetcher | undefined;
  private readonly buckets = new Map<string, BucketState>();
  private readonly opening = new Map<string, Promise<BucketState>>();
  private readonly changeListeners = new Map<ChangeListener, ((bucket: string) => boolean) | undefined>();
  private readonly statusListeners = new Set<(s: ReplicaStatus) => void>();
  private readonly readyListeners = new Set<(info: ReadyInfo) => void>();
  private readonly pages = new Map<number, PendingPage>();
  private limits: WireLimits = DEFAULT_LIMITS;
  private connection: ConnectionState = 'closed';
  private welcomed = false;
  private attempt = 0;
  private reconnectTimer: unknown;
  private pingTimer: unknown;
  private pingId = 0;
  /** Pings sent without an answer yet. */
  private unansweredPings = 0;
  private nextReqId = 1;
  private nextSubId = 1;
  private closed = false;
  private tail: Promise<unknown> = Promise.resolve();

  private constructor(opts: ReplicaOptions, replicaId: string, clock: HlcClock, env: Env) {
    this.replicaId = replicaId;
    this.storage = opts.storage;
    this.transport = opts.transport;
    this.env = env;
    this.clock = clock;
    this.bounds = { ...DEFAULT_MITT_BOUNDS, ...opts.mitt };
    this.pageSize = opts.pageSize ?? 4000;
    this.parallel = opts.parallelRanges ?? 4;
    this.pushBatch = opts.pushBatch ?? 500;
    this.pushWindow = opts.pushWindow ?? 10_000;
    this.ackTimeoutMs = opts.ackTimeoutMs ?? 5_000;
    this.gapTimeoutMs = opts.gapTimeoutMs ?? 1_000;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 15_000;
    this.pingIntervalMs = opts.pingIntervalMs ?? 15_000;
    this.backoff = opts.backoff ?? { baseMs: 250, capMs: 30_000 };
    this.fetchPageOverride = opts.fetchPage;
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

  /** Starts syncing `bucket` (idempotent). Writes open their bucket implicitly. */
  async openBucket(bucket: string): Promise<void> {
    await this.bucketState(bucket);
  }

  private bucketState(bucket: string): Promise<BucketState> {
    const existing = this.buckets.get(bucket);
    if (existing !== undefined) return Promise.resolve(existing);
    if (!isBucketName(bucket)) {
      return Promise.reject(new MittsyncError('BAD_MESSAGE', `bad bucket name ${JSON.stringify(bucket)}`));
    }
    let p = this.opening.get(bucket);
    if (p === undefined) {
      p = this.serial(async () => {
        const loaded = await this.storage.loadBucket(bucket);
        const meta = loaded ?? newBucketMeta(bucket);
        if (loaded === undefined) await this.storage.commit({ bucket, meta });
        const b = newBucketState(meta, await this.storage.loadOutbox(bucket));
        this.buckets.set(bucket, b);
        this.opening.delete(bucket);
        if (this.welcomed) this.subscribe(b);
        return b;
      });
      this.opening.set(bucket, p);
      // A failed open (storage trouble) must not stick: the next call tries again.
      p.catch(() => this.opening.delete(bucket));
    }
    return p;
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
   * Resolves with the ops written (their `hlc` is the version each write got).
   */
  async transact(
    bucket: string,
    writes: readonly Write[],
    opts?: { ack?: AckLevel },
  ): Promise<readonly Op[]> {
    if (this.closed) throw new MittsyncError('CLOSED', 'replica is closed');
    const prepared = writes.map((w) => this.checkWrite(w));
    const b = await this.bucketState(bucket);
    const ops = await this.serial(async () => {
      const current = await this.storage.getEntries(
        bucket,
        prepared.map((w) => w.key),
      );
      const meta = { ...b.meta, sum: { ...b.meta.sum } };
      const latest = new Map<string, Entry | undefined>();
      const ops: Op[] = [];
      const puts: Entry[] = [];
      prepared.forEach((w, i) => {
        const op: Op =
          'delete' in w
            ? {
                origin: this.replicaId,
                originSeq: meta.nextOriginSeq++,
                key: w.key,
                kind: 'del',
                hlc: this.clock.tick(),
              }
            : {
                origin: this.replicaId,
                originSeq: meta.nextOriginSeq++,
                key: w.key,
                kind: 'set',
                value: w.value,
                hlc: this.clock.tick(),
              };
        const entry = opToEntry(op, 0);
        checksumReplace(meta.sum, w.key, latest.has(w.key) ? latest.get(w.key) : current[i], entry);
        latest.set(w.key, entry);
        ops.push(op);
        puts.push(entry);
      });
      await this.storage.commit({ bucket, puts, outboxAdd: ops, meta, clock: this.clock.last() });
      b.meta = meta;
      b.outbox.push(...ops);
      const cu = b.catchUp;
      if (cu?.fresh) this.keep(cu, puts);
      this.emitChange(bucket, puts, 'local');
      this.pump(b);
      this.emitStatus();
      return ops;
    });
    if (opts?.ack === 'relay') await Promise.all(ops.map((op) => this.relayAck(b, op.originSeq)));
    return ops;
  }

  private checkWrite(w: Write): Write {
    if (typeof w.key !== 'string' || w.key.length === 0)
      throw new MittsyncError('BAD_MESSAGE', 'key must be a non-empty string');
    if (utf8Length(w.key) > this.limits.maxKeyBytes) {
      throw new MittsyncError('KEY_TOO_LARGE', `key is longer than ${this.limits.maxKeyBytes} bytes`);
    }
    if ('delete' in w) return { key: w.key, delete: true };
    const size = measureValue(w.value);
    if (size > this.limits.maxValueBytes) {
      throw new MittsyncError(
        'VALUE_TOO_LARGE',
        `value of ${size} bytes exceeds ${this.limits.maxValueBytes}`,
      );
    }
    // Copy so later mutation by the caller cannot change what was stored and pushed.
    return { key: w.key, value: copyValue(w.value) };
  }

  private relayAck(b: BucketState, originSeq: number): Promise<void> {
    if (originSeq <= b.ackedUpTo) return Promise.resolve();
    return new Promise((resolve, reject) => b.waiters.set(originSeq, { resolve, reject }));
  }

  /** The live entry at `key`, or undefined (absent or deleted). */
  async get(bucket: string, key: string): Promise<Entry | undefined> {
    const [e] = await this.storage.getEntries(bucket, [key]);
    return e === undefined || e.deleted ? undefined : e;
  }

  /** Live entries at `keys`, in order. */
  async getMany(bucket: string, keys: readonly string[]): Promise<(Entry | undefined)[]> {
    const out = await this.storage.getEntries(bucket, keys);
    return out.map((e) => (e === undefined || e.deleted ? undefined : e));
  }

  /** Live entries by prefix or range, in key order. */
  scan(bucket: string, query: ScanQuery): Promise<Entry[]> {
    return this.storage.scan(bucket, query);
  }

  /** Resolves when `bucket` has completed a catch-up on the current connection (or already had). */
  async whenReady(bucket: string): Promise<ReadyInfo> {
    const b = await this.bucketState(bucket);
    if (b.phase === 'ready' && b.lastReady !== null) return b.lastReady;
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
      return b === undefined ? undefined : bucketStatus(b);
    }
    return {
      replicaId: this.replicaId,
      connection: this.connection,
      buckets: [...this.buckets.values()].map(bucketStatus),
      persistent: this.storage.persistent,
    };
  }

  /** Stops syncing, waits for queued storage work, closes storage. Pending writes stay in the outbox. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.env.clearTimeout(this.reconnectTimer);
    this.env.clearTimeout(this.pingTimer);
    for (const b of this.buckets.values()) this.clearBucketTimers(b);
    this.failPages(new MittsyncError('CLOSED', 'replica closed'));
    this.transport.close();
    await this.tail.catch(() => undefined);
    for (const b of this.buckets.values()) {
      for (const w of b.waiters.values())
        w.reject(new MittsyncError('CLOSED', 'replica closed before the relay acknowledged'));
      b.waiters.clear();
    }
    await this.storage.close();
  }

  // -------------------------------------------------------------------------------------------
  // Plumbing
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
        if (b.subId === subId && !this.closed) this.subscribe(b);
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
    source: 'local' | 'remote',
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

  private send(msg: ClientMessage): void {
    if (this.connection === 'open') this.transport.send(msg);
  }

  // -------------------------------------------------------------------------------------------
  // Connection
  // -------------------------------------------------------------------------------------------

  /** Connects (or reconnects) to the relay; called by `open` unless `autoConnect` is false. */
  connect(): void {
    if (this.closed || this.connection !== 'closed') return;
    this.connection = 'connecting';
    this.emitStatus();
    let live = true;
    this.transport.connect({
      open: () => {
        if (!live) return;
        this.connection = 'open';
        this.send({ type: 'hello', v: PROTOCOL_VERSION, replicaId: this.replicaId });
        this.armPing();
      },
      message: (msg) => {
        if (live) this.onMessage(msg);
      },
      close: () => {
        if (!live) return;
        live = false;
        this.onDisconnect();
      },
    });
  }

  /** Drops the connection now; with `reconnect: false` it stays down until `connect()`. */
  disconnect(opts?: { reconnect?: boolean }): void {
    if (opts?.reconnect === false) {
      this.env.clearTimeout(this.reconnectTimer);
      this.attempt = -1;
    }
    this.transport.close();
  }

  private onDisconnect(): void {
    this.connection = 'closed';
    this.welcomed = false;
    this.unansweredPings = 0;
    this.env.clearTimeout(this.pingTimer);
    this.failPages(new MittsyncError('CLOSED', 'connection closed'));
    for (const b of this.buckets.values()) {
      this.clearBucketTimers(b);
      b.canPush = false;
      b.sentUpTo = b.ackedUpTo;
      b.mitt = null;
      b.catchUp = null;
      b.subscribedOk = false;
      b.subId = this.nextSubId++;
      b.phase = 'idle';
    }
    this.emitStatus();
    if (this.closed) return;
    if (this.attempt < 0) {
      this.attempt = 0;
      return;
    }
    const delay = backoffDelay(this.attempt++, this.env.random, this.backoff.baseMs, this.backoff.capMs);
    this.reconnectTimer = this.env.setTimeout(() => this.connect(), delay);
  }

  private armPing(): void {
    this.env.clearTimeout(this.pingTimer);
    this.pingTimer = this.env.setTimeout(() => this.ping(), this.pingIntervalMs);
  }

  private ping(): void {
    if (this.connection !== 'open') return;
    if (this.unansweredPings >= 2) {
      // No answer for two whole intervals: the socket is dead without having said so.
      this.transport.close();
      return;
    }
    for (const b of this.buckets.values()) {
      // A head reported last time that we still haven't reached: the stream's tail was lost.
      if (b.mitt !== null && b.mitt.upTo < b.probedHead) this.subscribe(b);
    }
    this.unansweredPings++;
    this.send({ type: 'ping', id: ++this.pingId });
    this.armPing();
  }

  private failPages(err: MittsyncError): void {
    for (const [id, p] of this.pages) {
      this.env.clearTimeout(p.timer);
      p.reject(err);
      this.pages.delete(id);
    }
  }

  private clearBucketTimers(b: BucketState): void {
    this.env.clearTimeout(b.ackTimer);
    this.env.clearTimeout(b.gapTimer);
    this.env.clearTimeout(b.subTimer);
    if (b.catchUp !== null) this.env.clearTimeout(b.catchUp.flushTimer);
    b.ackTimer = b.gapTimer = b.subTimer = undefined;
  }

  private onMessage(msg: ServerMessage): void {
    if (msg.type === 'welcome') {
      if (msg.v !== PROTOCOL_VERSION) {
        this.transport.close();
        return;
      }
      this.limits = msg.limits;
      this.welcomed = true;
      this.attempt = 0;
      for (const b of this.buckets.values()) this.subscribe(b);
      this.emitStatus();
      return;
    }
    if (msg.type === 'pong') {
      this.unansweredPings = 0;
      for (const [name, head] of Object.entries(msg.heads)) {
        const b = this.buckets.get(name);
        if (b !== undefined) b.probedHead = head;
      }
      return;
    }
    if (msg.type === 'error') {
      const b = msg.bucket === undefined ? undefined : this.buckets.get(msg.bucket);
      const err = new MittsyncError(msg.code, msg.message);
      if (msg.reqId !== undefined) {
        const p = this.pages.get(msg.reqId);
        if (p !== undefined) {
          this.pages.delete(msg.reqId);
          this.env.clearTimeout(p.timer);
          p.reject(err);
        }
      }
      if (b !== undefined) {
        this.fail(b, err);
        if (msg.reqId === undefined && REFUSED_PUSH.has(msg.code)) this.refusePushes(b, err);
      }
      return;
    }
    if (msg.type === 'page') {
      this.settlePage(msg.reqId, msg);
      return;
    }
    const b = this.buckets.get(msg.bucket);
    if (b === undefined) return;
    switch (msg.type) {
      case 'subscribed':
        this.onSubscribed(b, msg);
        return;
      case 'reset':
        if (msg.subId === b.subId || msg.subId === -1) this.onReset(b);
        return;
      case 'deliver':
        this.onDeliver(b, msg);
        return;
      case 'ack':
        this.onAck(b, msg);
        return;
      case 'marker':
        void this.serial(async () => {
          this.pump(b);
          this.send({
            type: 'markerReply',
            bucket: b.name,
            flushId: msg.flushId,
            sent: b.meta.nextOriginSeq - 1,
          });
        });
        return;
      case 'flushed':
        this.onFlushed(b, msg);
        return;
      case 'resync':
        this.subscribe(b);
        return;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Catch-up
  // -------------------------------------------------------------------------------------------

  /** (Re)subscribes a bucket: a resume from the checkpoint when ready, else a join. */
  private subscribe(b: BucketState): void {
    if (!this.welcomed) return;
    this.clearBucketTimers(b);
    b.subId = this.nextSubId++;
    b.subscribedOk = false;
    b.mitt = null;
    b.early = [];
    b.catchUp = null;
    b.canPush = false;
    b.sentUpTo = b.ackedUpTo;
    const since = b.meta.ready ? b.meta.checkpoint : 0;
    b.subSince = since;
    b.phase = since > 0 ? 'resuming' : 'joining';
    const subId = b.subId;
    this.send({
      type: 'sub',
      bucket: b.name,
      since,
      flush: since === 0,
      subId,
      ...(b.meta.epoch === null ? {} : { epoch: b.meta.epoch }),
    });
    b.subTimer = this.env.setTimeout(() => {
      if (b.subId === subId && !b.subscribedOk) this.subscribe(b);
    }, this.requestTimeoutMs);
    this.emitStatus();
  }

  private onSubscribed(b: BucketState, msg: SubscribedMsg): void {
    if (msg.subId !== b.subId || b.subscribedOk) return; // stale or duplicated answer
    b.subscribedOk = true;
    this.env.clearTimeout(b.subTimer);
    const since = b.subSince;
    b.mitt = new Mitt(msg.from, this.bounds);
    b.sumAt = { seq: msg.from - 1, sum: msg.sum };
    const early = b.early;
    b.early = [];
    const keys = [undefined, ...msg.splits];
    const parts = since === 0 ? keys.length : 1;
    const cu: CatchUp = {
      subId: msg.subId,
      since,
      from: msg.from,
      epoch: msg.epoch,
      fresh: since === 0,
      kept: new Map(),
      arrived: [],
      merged: [],
      merging: false,
      ranges: Array.from({ length: parts }, (_, i) => ({
        after: keys[i],
        until: since === 0 ? msg.splits[i] : undefined,
        done: false,
        inflight: false,
      })),
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
    b.catchUp = cu;
    for (const m of early) {
      if (m.type === 'deliver') this.onDeliver(b, m);
      else this.onFlushed(b, m);
    }
    if (cu.flushId !== undefined) {
      cu.flushTimer = this.env.setTimeout(() => {
        // The flush result never came (lost, or the relay gave up silently): report it.
        if (b.catchUp === cu && cu.flushed === undefined) {
          cu.flushTimedOut = true;
          cu.flushed = {
            type: 'flushed',
            bucket: b.name,
            flushId: cu.flushId ?? '',
            seq: 0,
            covered: [],
            missed: [{ replicaId: '*', reason: 'timeout' }],
          };
          this.tryFinish(b, cu);
        }
      }, this.requestTimeoutMs);
    }
    this.syncTask(b, async () => {
      if (b.catchUp !== cu) return;
      // Ops already committed by the relay (their ack was lost) count as acknowledged.
      await this.reconcileOutbox(b, msg.epoch, msg.received);
      if (since === 0) {
        // A join starts from nothing but our own unacknowledged writes.
        const keep = [...new Set(b.outbox.map((op) => op.key))];
        const meta: BucketMeta = {
          ...b.meta,
          epoch: null,
          checkpoint: 0,
          ready: false,
          sum: emptyChecksum(),
        };
        const keptEntries = (await this.storage.getEntries(b.name, keep)).filter(
          (e): e is Entry => e !== undefined,
        );
        this.keep(cu, keptEntries);
        for (const e of keptEntries) checksumReplace(meta.sum, e.key, undefined, e);
        await this.storage.resetBucket(b.name, keep, meta);
        b.meta = meta;
      }
      if (b.catchUp !== cu) return;
      b.canPush = true;
      this.pump(b);
      this.pumpRanges(b, cu);
    });
    this.emitStatus();
  }

  /**
   * Makes the outbox fit the relay's reception counter. Within one epoch the counter never
   * goes down, so a lower `received` is just a stale answer (it overtook newer acks) and only
   * a higher one acknowledges ops whose ack was lost. A new epoch (relay reset or restored
   * from an older backup) is authoritative: ops it lacks are renumbered to follow its counter,
   * since pushing them with their old numbers would leave a gap it can never fill.
   */
  private async reconcileOutbox(b: BucketState, epoch: string, received: number): Promise<void> {
    const known = b.meta.counterEpoch;
    if (known === null || known === epoch) {
      if (received > b.ackedUpTo) await this.acknowledge(b, received, undefined);
      if (received >= b.meta.nextOriginSeq) {
        // The relay has more of our ops than we remember issuing (our storage went back in
        // time): continue after its counter so no number is used twice.
        await this.renumber(b, received);
      } else if (known === null) {
        const meta = { ...b.meta, counterEpoch: epoch };
        await this.storage.commit({ bucket: b.name, meta });
        b.meta = meta;
      }
      return;
    }
    // A new epoch: whatever it holds of ours up to `received` is committed there.
    const upTo = Math.min(received, b.outbox[b.outbox.length - 1]?.originSeq ?? b.ackedUpTo);
    if (upTo > b.ackedUpTo) await this.acknowledge(b, upTo, undefined);
    await this.renumber(b, received, epoch);
  }

  /** Renumbers the outbox to follow `received` (and records the epoch the numbers belong to). */
  private async renumber(b: BucketState, received: number, epoch?: string): Promise<void> {
    const renumbered = b.outbox.map((op, i) => ({ ...op, originSeq: received + 1 + i }));
    const meta: BucketMeta = {
      ...b.meta,
      nextOriginSeq: received + 1 + renumbered.length,
      ...(epoch === undefined ? {} : { counterEpoch: epoch }),
    };
    await this.storage.commit({ bucket: b.name, outboxReplace: renumbered, meta });
    b.outbox = renumbered;
    b.meta = meta;
    b.ackedUpTo = b.sentUpTo = received;
  }

  /**
   * Keeps up to `parallelRanges` page requests in flight, one per key range, while fewer
   * than that many downloaded pages wait to be merged (so memory stays bounded when storage
   * is slower than the network).
   */
  private pumpRanges(b: BucketState, cu: CatchUp): void {
    let inflight = cu.ranges.filter((r) => r.inflight).length;
    for (const r of cu.ranges) {
      if (inflight + cu.arrived.length >= this.parallel) return;
      if (r.done || r.inflight) continue;
      this.requestRange(b, cu, r);
      inflight++;
    }
  }

  private requestRange(b: BucketState, cu: CatchUp, r: CatchUp['ranges'][number]): void {
    if (r.done || r.inflight || b.catchUp !== cu) return;
    r.inflight = true;
    const req: PageReqMsg = {
      type: 'pageReq',
      bucket: b.name,
      reqId: this.nextReqId++,
      since: cu.since,
      // Small first pages get storage busy sooner; the rest at full size.
      limit: Math.min(this.pageSize, FIRST_PAGE_ENTRIES * 2 ** cu.requested++),
      // Columns where this machine can read them (see columns.ts).
      ...(littleEndian ? { cols: true as const } : {}),
      ...(r.after === undefined ? {} : { after: r.after }),
      ...(r.until === undefined ? {} : { until: r.until }),
    };
    this.fetchPage(b, req).then(
      (res) => {
        r.inflight = false;
        if (b.catchUp !== cu) return;
        if (res.type === 'reset') {
          this.onReset(b);
          return;
        }
        cu.pageFailures = 0;
        // The cursor moves now, so the range's next page can download while this one waits
        // to be merged; pages of one range arrive, and are merged, in key order.
        if (res.next === null) r.done = true;
        else r.after = res.next;
        const span =
          res.head === undefined
            ? undefined
            : { after: req.after, upTo: res.next ?? req.until, head: res.head };
        cu.arrived.push({ entries: res.cols ?? res.entries, span });
        this.mergeArrived(b, cu);
        this.pumpRanges(b, cu);
      },
      () => {
        r.inflight = false;
        // Timed out, refused (rate limit) or the connection dropped: retry after a backoff
        // while this catch-up is still current.
        cu.pageFailures++;
        const delay = backoffDelay(cu.pageFailures, this.env.random, this.backoff.baseMs, this.backoff.capMs);
        this.env.setTimeout(() => {
          if (b.catchUp === cu && this.connection === 'open') this.pumpRanges(b, cu);
        }, delay);
      },
    );
  }

  /**
   * Merges the downloaded pages waiting in `cu.arrived`, as many as arrived (up to
   * {@link MERGE_BATCH_ENTRIES} entries) in one storage commit: when storage is the slower
   * side, pages pile up during a commit and the next one takes them all, so the cost per
   * commit is paid per batch instead of per page.
   */
  private mergeArrived(b: BucketState, cu: CatchUp): void {
    if (cu.merging || cu.arrived.length === 0) return;
    cu.merging = true;
    this.syncTask(b, async () => {
      if (b.catchUp !== cu) return;
      let n = 0;
      let count = 0;
      while (n < cu.arrived.length && (n === 0 || count < MERGE_BATCH_ENTRIES)) {
        count += sizeOf((cu.arrived[n] as ArrivedPage).entries);
        n++;
      }
      const batch = cu.arrived.slice(0, n);
      await this.mergePage(
        b,
        cu,
        batch.map((p) => p.entries),
      );
      if (b.catchUp !== cu) return;
      for (const p of batch) addMerged(cu, p.span);
      cu.arrived.splice(0, n);
      cu.pages += n;
      cu.entries += count;
      cu.merging = false;
      this.emitStatus();
      if (cu.arrived.length > 0) this.mergeArrived(b, cu);
      else if (cu.ranges.every((x) => x.done && !x.inflight)) {
        cu.downloadDone = true;
        this.tryFinish(b, cu);
      }
      this.pumpRanges(b, cu);
    });
  }

  /** Records versions a fresh join's later downloads must not overwrite (see `CatchUp.kept`). */
  private keep(cu: CatchUp, entries: readonly Entry[]): void {
    for (const e of entries) cu.kept.set(e.key, versionOf(e));
    this.boundKept(cu);
  }

  private boundKept(cu: CatchUp): void {
    if (cu.kept.size > this.bounds.maxKept) {
      cu.fresh = false;
      cu.kept.clear();
    }
  }

  private fetchPage(b: BucketState, req: PageReqMsg): Promise<PageMsg | ResetMsg> {
    if (this.fetchPageOverride !== undefined) return this.fetchPageOverride(req);
    return new Promise((resolve, reject) => {
      const timer = this.env.setTimeout(() => {
        this.pages.delete(req.reqId);
        reject(new MittsyncError('TIMEOUT', `page ${req.reqId} timed out`));
      }, this.requestTimeoutMs);
      this.pages.set(req.reqId, { bucket: b.name, subId: b.subId, resolve, reject, timer });
      this.send(req);
    });
  }

  private settlePage(reqId: number, msg: PageMsg): void {
    const p = this.pages.get(reqId);
    if (p === undefined) return; // late answer to a retried request
    this.pages.delete(reqId);
    this.env.clearTimeout(p.timer);
    p.resolve(msg);
  }

  /**
   * Merges downloaded pages (each sorted by key, no key in two): never over a newer version
   * held in the mitt or stored. A fresh join decides most keys of a page that came by column
   * without looking at them one by one: only keys the mitt holds a live op for, or the join
   * keeps a version of, can lose, and those few are found by binary search. The rest of the
   * page goes to a columnar store as it came.
   */
  private async mergePage(
    b: BucketState,
    cu: CatchUp,
    arrived: readonly (readonly Entry[] | EntryColumns)[],
  ): Promise<void> {
    const fresh = cu.fresh;
    // A resume compares every key with what is stored: entries, one by one.
    const pages = fresh ? arrived : arrived.map((p) => (isColumns(p) ? columnEntries(p) : p));
    const total = pages.reduce((n, p) => n + sizeOf(p), 0);
    if (total === 0) return;
    const mitt = b.mitt;
    const stored = fresh
      ? undefined
      : await this.storage.getEntries(
          b.name,
          pages.flatMap((p) => (p as readonly Entry[]).map((e) => e.key)),
        );
    const meta = { ...b.meta, sum: { ...b.meta.sum } };
    const puts: Entry[] = [];
    const columns: ColumnRange[] = [];
    const absent: string[] = [];
    let maxHlc = '';
    let at = 0;
    /** Decides one downloaded entry; true when it is applied. */
    const decide = (key: string, hlc: string, deleted: boolean, cur: Version | undefined): boolean => {
      if (hlc > maxHlc) maxHlc = hlc;
      const held = mitt?.newest(key);
      if (!downloadedWins(hlc, held, cur)) {
        // A held op beats the download and is applied later: until then storage has nothing
        // of this key, which the page's merged span alone would not tell (see `knownVersions`).
        if (fresh && cur === undefined && held !== undefined) absent.push(key);
        return false;
      }
      const version: Version = deleted ? { hlc, deleted: true } : { hlc };
      checksumReplace(meta.sum, key, cur, version);
      if (fresh && cur !== undefined) cu.kept.set(key, version);
      return true;
    };
    for (const page of pages) {
      if (!isColumns(page)) {
        for (const e of page) {
          if (e.seq > cu.dlMaxSeq) cu.dlMaxSeq = e.seq;
          const cur = fresh ? cu.kept.get(e.key) : stored?.[at];
          at++;
          if (decide(e.key, e.hlc, e.deleted === true, cur)) puts.push(e);
        }
        continue;
      }
      const c = page;
      const n = columnSize(c);
      if (n === 0) continue;
      for (let i = 0; i < n; i++) if ((c.seqs[i] as number) > cu.dlMaxSeq) cu.dlMaxSeq = c.seqs[i] as number;
      const top = maxHlcIn(c);
      if (top > maxHlc) maxHlc = top;
      // The keys that need a decision of their own (a fresh join: nothing is stored but `kept`).
      const special = new Set<number>();
      const first = keyAt(c, 0);
      const last = keyAt(c, n - 1);
      const find = (key: string) => {
        if (key < first || key > last) return;
        const i = indexIn(c, key);
        if (i >= 0) special.add(i);
      };
      if (mitt !== null) for (const key of mitt.heldKeys()) find(key);
      for (const key of cu.kept.keys()) find(key);
      const lost: number[] = [];
      for (const i of special) {
        const key = keyAt(c, i);
        if (!decide(key, hlcAt(c, i), isTombstoneIn(c, i), cu.kept.get(key))) lost.push(i);
      }
      for (let i = 0; i < n; i++) if (!special.has(i) && !isTombstoneIn(c, i)) checksumAddIn(meta.sum, c, i);
      // The page less the entries that lost, as ranges of it (a columnar store copies them once).
      let from = 0;
      for (const d of [...lost.sort((x, y) => x - y), n]) {
        if (d > from) columns.push({ c, from, to: d });
        from = d + 1;
      }
    }
    if (this.storage.columnar !== true) puts.push(...columns.splice(0).flatMap(rangeEntries));
    if (maxHlc !== '') this.clock.observe(maxHlc);
    await this.storage.commit({
      bucket: b.name,
      puts,
      ...(columns.length > 0 ? { columns } : {}),
      meta,
      clock: this.clock.last(),
    });
    b.meta = meta;
    if (cu.fresh && absent.length > 0 && b.catchUp === cu) {
      for (const k of absent) cu.kept.set(k, ABSENT);
      this.boundKept(cu);
    }
    // Listeners get entries; a columnar page's are made only for a listener that wants them.
    this.emitChange(
      b.name,
      () => (columns.length === 0 ? puts : puts.concat(columns.flatMap(rangeEntries))),
      'remote',
    );
  }

  private onFlushed(b: BucketState, msg: FlushedMsg): void {
    const cu = b.catchUp;
    if (cu === null && !b.subscribedOk && b.early.length < this.bounds.maxAhead) {
      b.early.push(msg); // overtook `subscribed`
      return;
    }
    if (cu === null || cu.flushId !== msg.flushId || cu.flushed !== undefined) return;
    cu.flushed = msg;
    this.env.clearTimeout(cu.flushTimer);
    this.tryFinish(b, cu);
  }

  /** Flips the bucket to ready once download, flush and stream all cover the cut. */
  private tryFinish(b: BucketState, cu: CatchUp): void {
    const mitt = b.mitt;
    if (b.catchUp !== cu || mitt === null || cu.finishing || !cu.downloadDone) return;
    if (cu.flushId !== undefined && cu.flushed === undefined) {
      b.phase = 'flushing';
      this.emitStatus();
      return;
    }
    const target = Math.max(cu.from - 1, cu.flushed?.seq ?? 0);
    if (mitt.upTo < target) return; // more of the stream to come (or a gap to resolve)
    cu.finishing = true;
    this.syncTask(b, async () => {
      if (b.catchUp !== cu) return;
      const upTo = mitt.upTo;
      await this.applyLive(b, mitt.spill(), { checkpoint: upTo, ready: true, epoch: cu.epoch });
      if (b.catchUp !== cu) return;
      b.catchUp = null;
      b.phase = 'ready';
      const info: ReadyInfo = {
        bucket: b.name,
        checkpoint: upTo,
        covered: cu.flushed?.covered ?? [],
        missed: cu.flushed?.missed ?? [],
        flush: cu.flushed === undefined ? 'none' : cu.flushTimedOut ? 'timeout' : 'done',
      };
      b.lastReady = info;
      b.storageFailures = 0;
      b.dlMaxSeqCheck = cu.dlMaxSeq;
      this.verify(b);
      for (const w of b.readyWaiters.splice(0)) w(info);
      for (const l of this.readyListeners) l(info);
      this.emitStatus();
      // Live ops that came while this commit ran went into the mitt as the join's; no later
      // delivery may come to apply them, so apply them now.
      this.applyHeld(b, mitt);
    });
  }

  private onReset(b: BucketState): void {
    b.meta = { ...b.meta, ready: false, checkpoint: 0 };
    this.subscribe(b);
  }

  // -------------------------------------------------------------------------------------------
  // Live stream
  // -------------------------------------------------------------------------------------------

  private onDeliver(b: BucketState, msg: DeliverMsg): void {
    const mitt = b.mitt;
    if (mitt === null || !b.subscribedOk) {
      // The stream can overtake the `subscribed` answer: keep those ops for the mitt (bounded;
      // past the bound they are dropped and gap detection recovers them).
      if (b.early.length < this.bounds.maxAhead) b.early.push(msg);
      return;
    }
    let fresh = 0;
    for (const op of msg.ops) if (mitt.add(op, true)) fresh++;
    const last = msg.ops[msg.ops.length - 1];
    if (last !== undefined && (b.sumAt === null || last.seq > b.sumAt.seq))
      b.sumAt = { seq: last.seq, sum: msg.sum };
    if (mitt.gapOverflow) {
      this.subscribe(b);
      return;
    }
    if (mitt.hasGap) {
      if (b.gapTimer === undefined) {
        b.gapTimer = this.env.setTimeout(() => {
          b.gapTimer = undefined;
          if (b.mitt === mitt && mitt.hasGap) this.subscribe(b);
        }, this.gapTimeoutMs);
      }
    } else if (b.gapTimer !== undefined) {
      this.env.clearTimeout(b.gapTimer);
      b.gapTimer = undefined;
    }
    if (fresh === 0) return;
    const cu = b.catchUp;
    if (cu !== null) {
      if (mitt.isOverBound()) {
        // Spill: apply held ops to storage now (LWW makes the order irrelevant); the
        // download then merges against their versions, kept in `cu.kept`, or against
        // storage once a join is no longer fresh.
        const subId = b.subId;
        this.syncTask(b, async () => {
          if (b.subId === subId) await this.applyLive(b, mitt.spill(), undefined);
        });
      }
      this.tryFinish(b, cu);
      return;
    }
    this.applyHeld(b, mitt);
  }

  /**
   * Applies the ops a ready bucket's mitt holds, moves the checkpoint with them and reports
   * it: a replica that only receives hears of its new checkpoint from nothing else.
   */
  private applyHeld(b: BucketState, mitt: Mitt): void {
    if (mitt.heldCount === 0) return;
    const subId = b.subId;
    this.syncTask(b, async () => {
      if (b.subId !== subId || b.mitt !== mitt || mitt.heldCount === 0) return;
      const upTo = mitt.upTo;
      await this.applyLive(b, mitt.spill(), { checkpoint: upTo });
      this.verify(b);
      this.emitStatus();
    });
  }

  /** LWW-applies live ops to storage, with an optional meta change in the same commit. */
  private async applyLive(
    b: BucketState,
    ops: readonly SeqOp[],
    patch: Partial<BucketMeta> | undefined,
  ): Promise<void> {
    const newest = new Map<string, SeqOp>();
    for (const op of ops) {
      const cur = newest.get(op.key);
      if (cur === undefined || op.hlc > cur.hlc) newest.set(op.key, op);
    }
    const keys = [...newest.keys()];
    const known = knownVersions(b, ops);
    const toRead = known === undefined ? keys : keys.filter((k) => !known.has(k));
    const read = toRead.length === 0 ? [] : await this.storage.getEntries(b.name, toRead);
    const stored = new Map<string, Version | undefined>(toRead.map((k, i) => [k, read[i]]));
    const meta: BucketMeta = { ...b.meta, ...patch, sum: { ...b.meta.sum } };
    const puts: Entry[] = [];
    let maxHlc = '';
    keys.forEach((k) => {
      const op = newest.get(k) as SeqOp;
      if (op.hlc > maxHlc) maxHlc = op.hlc;
      const cur = known?.has(k) ? known.get(k) : stored.get(k);
      if (cur === OLDER) return;
      if (!wins(op.hlc, cur?.hlc)) return;
      const e = opToEntry(op, op.seq);
      checksumReplace(meta.sum, k, cur, e);
      puts.push(e);
    });
    if (maxHlc !== '') this.clock.observe(maxHlc);
    await this.storage.commit({ bucket: b.name, puts, meta, clock: this.clock.last() });
    b.meta = meta;
    if (b.catchUp?.fresh) this.keep(b.catchUp, puts);
    this.emitChange(b.name, puts, 'remote');
  }

  /**
   * Compares the stored checksum with the relay's when the stored state must equal the
   * relay's at the checkpoint: nothing of ours pending, no op past a gap applied, no
   * downloaded entry newer than the checkpoint. A mismatch means divergence: re-join.
   */
  private verify(b: BucketState): void {
    const c = b.meta.checkpoint;
    const at = b.sumAt;
    if (at === null || at.seq !== c || b.phase !== 'ready' || b.outbox.length > 0) return;
    if (
      b.mitt === null ||
      b.mitt.hasGap ||
      b.mitt.heldCount > 0 ||
      c < b.localAheadSeq ||
      c < b.dlMaxSeqCheck
    )
      return;
    if (checksumEquals(at.sum, b.meta.sum)) {
      b.verified++;
      return;
    }
    this.fail(
      b,
      new MittsyncError(
        'CHECKSUM_MISMATCH',
        `bucket ${b.name} differs from the relay at seq ${c}; re-joining`,
      ),
    );
    this.onReset(b);
  }

  // -------------------------------------------------------------------------------------------
  // Outbox
  // -------------------------------------------------------------------------------------------

  /** Sends unsent outbox ops, in order, within the window. */
  private pump(b: BucketState): void {
    if (!b.canPush || this.connection !== 'open') return;
    const first = b.outbox[0];
    if (first === undefined) return;
    const max = Math.min(this.pushBatch, this.limits.maxOpsPerFrame);
    while (b.sentUpTo - b.ackedUpTo < this.pushWindow) {
      const start = b.sentUpTo + 1 - first.originSeq;
      if (start >= b.outbox.length) break;
      const ops = b.outbox.slice(Math.max(0, start), Math.max(0, start) + max);
      if (ops.length === 0) break;
      this.send({ type: 'push', bucket: b.name, ops });
      b.sentUpTo = (ops[ops.length - 1] as Op).originSeq;
    }
    if (b.ackTimer === undefined && b.sentUpTo > b.ackedUpTo) {
      const acked = b.ackedUpTo;
      b.ackTimer = this.env.setTimeout(() => {
        b.ackTimer = undefined;
        if (b.ackedUpTo === acked && b.sentUpTo > acked) {
          // No progress: the frame or its ack was lost. Go back and resend.
          b.sentUpTo = b.ackedUpTo;
        }
        this.pump(b);
      }, this.ackTimeoutMs);
    }
  }

  /**
   * The relay refused a push frame outright (no scope, over a limit): the ops in flight will
   * never be acknowledged as they are. Settle their `relay` waiters with the error instead of
   * leaving them hanging, and stop pushing this bucket until the next connection (they stay in
   * the outbox: a new token or configuration may let them through).
   */
  private refusePushes(b: BucketState, err: MittsyncError): void {
    for (const [seq, w] of b.waiters) {
      if (seq > b.sentUpTo) continue;
      b.waiters.delete(seq);
      w.reject(err);
    }
    b.canPush = false;
    this.env.clearTimeout(b.ackTimer);
    b.ackTimer = undefined;
  }

  private onAck(b: BucketState, msg: AckMsg): void {
    if (msg.seq !== undefined && msg.seq > b.localAheadSeq) b.localAheadSeq = msg.seq;
    const rejected = new Map((msg.rejected ?? []).map((r) => [r.originSeq, r]));
    if (msg.upTo > b.ackedUpTo) {
      void this.serial(() => this.acknowledge(b, msg.upTo, rejected));
    }
    if (msg.gap) b.sentUpTo = Math.max(b.ackedUpTo, msg.upTo);
    if (b.sentUpTo < msg.upTo) b.sentUpTo = msg.upTo;
    if (rejected.size > 0) {
      // The relay refused some of our writes; our stored state has them, the relay's not.
      // Re-join to take the relay's state (pending writes are kept).
      this.onReset(b);
      return;
    }
    this.pump(b);
  }

  /** Drops acknowledged ops from the outbox (memory, then storage) and settles their waiters. */
  private async acknowledge(
    b: BucketState,
    upTo: number,
    rejected: Map<number, { code: string; message: string }> | undefined,
  ): Promise<void> {
    if (upTo <= b.ackedUpTo) return;
    b.ackedUpTo = upTo;
    if (b.sentUpTo < upTo) b.sentUpTo = upTo;
    let n = 0;
    while (n < b.outbox.length && (b.outbox[n] as Op).originSeq <= upTo) n++;
    b.outbox.splice(0, n);
    this.env.clearTimeout(b.ackTimer);
    b.ackTimer = undefined;
    for (const [seq, w] of b.waiters) {
      if (seq > upTo) continue;
      b.waiters.delete(seq);
      const r = rejected?.get(seq);
      if (r === undefined) w.resolve();
      else w.reject(new MittsyncError(r.code as MittsyncError['code'], r.message));
    }
    if (rejected !== undefined && rejected.size > 0) {
      const first = rejected.values().next().value;
      if (first !== undefined)
        this.fail(b, new MittsyncError(first.code as MittsyncError['code'], first.message));
    }
    try {
      await this.storage.commit({ bucket: b.name, outboxAckUpTo: upTo });
    } catch (e) {
      // Harmless: the ops stay stored and are re-pushed after a restart; the relay dedupes.
      this.fail(b, toMittsyncError(e, 'STORAGE_UNAVAILABLE'));
    }
    this.pump(b);
    this.emitStatus();
  }
}

/** Size of a catch-up's first page request; each next one doubles, up to `pageSize`. */
const FIRST_PAGE_ENTRIES = 250;

/** Most downloaded entries merged in one storage commit (pages that arrived meanwhile). */
const MERGE_BATCH_ENTRIES = 16_000;

/** Error codes with which the relay refuses a whole push frame. */
const REFUSED_PUSH: ReadonlySet<string> = new Set([
  'FORBIDDEN',
  'TOO_MANY_OPS',
  'KEY_TOO_LARGE',
  'VALUE_TOO_LARGE',
  'FRAME_TOO_LARGE',
  'ORIGIN_MISMATCH',
  'BAD_MESSAGE',
]);

/** Deep copy of a JSON value. */
function copyValue(v: Value): Value {
  if (typeof v !== 'object' || v === null) return v;
  if (Array.isArray(v)) return v.map(copyValue);
  const out: { [k: string]: Value } = {};
  for (const k in v) out[k] = copyValue(v[k] as Value);
  return out;
}

/** In `CatchUp.kept`: a key storage has nothing of (a held op beat its download). */
const ABSENT: Version = { hlc: '', deleted: true };
/** From {@link knownVersions}: every op of the key is older than what storage has. */
const OLDER: Version = { hlc: '\uffff', deleted: true };

/** Records a merged page's span, keeping `cu.merged` sorted; a page without one ends it. */
function addMerged(cu: CatchUp, span: MergedSpan | undefined): void {
  if (cu.merged === null) return;
  if (span === undefined) {
    cu.merged = null;
    return;
  }
  const at = spanIndex(cu.merged, span.after) + 1;
  cu.merged.splice(at, 0, span);
}

/** Index of the last span whose `after` is below `key` (undefined sorts first), or -1. */
function spanIndex(spans: readonly MergedSpan[], key: string | undefined): number {
  let lo = 0;
  let hi = spans.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const after = (spans[mid] as MergedSpan).after;
    if (after === undefined || (key !== undefined && after < key)) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/** The merged span holding `key`, if any. */
function spanOf(spans: readonly MergedSpan[], key: string): MergedSpan | undefined {
  const s = spans[spanIndex(spans, key)];
  return s !== undefined && (s.upTo === undefined || key <= s.upTo) ? s : undefined;
}

/**
 * What storage holds of the keys of `ops` during a fresh join, where that is known without
 * reading it (the rest is read). Storage then holds, of a key, its version in `kept` (local
 * writes, applied live ops, or {@link ABSENT}); else the downloaded entry if a merged page
 * covered the key; else nothing. A page read as of relay seq `head` holds the relay's state
 * of its keys at `head`, and the relay delivers only ops that changed state, so an op with
 * `seq <= head` is no newer than the download ({@link OLDER}), and the first op after `head`
 * names that state in `prev`. That needs every op of the key between `head` and it: true up
 * to the mitt's contiguous seq (ops received earlier were applied, and kept if they won).
 * Returns undefined when nothing is known this way.
 */
function knownVersions(b: BucketState, ops: readonly SeqOp[]): Map<string, Version | undefined> | undefined {
  const cu = b.catchUp;
  const mitt = b.mitt;
  if (cu === null || !cu.fresh || cu.merged === null || mitt === null) return undefined;
  const spans = cu.merged;
  const out = new Map<string, Version | undefined>();
  const first = new Map<string, SeqOp>();
  for (const op of ops) {
    const k = op.key;
    if (out.has(k)) continue;
    const kept = cu.kept.get(k);
    if (kept !== undefined) {
      out.set(k, kept);
      continue;
    }
    const span = spanOf(spans, k);
    if (span === undefined) {
      out.set(k, undefined); // not downloaded yet: nothing stored
      continue;
    }
    if (op.seq <= span.head) continue;
    const f = first.get(k);
    if (f === undefined || op.seq < f.seq) first.set(k, op);
  }
  for (const op of ops) {
    const k = op.key;
    if (out.has(k)) continue;
    const f = first.get(k);
    if (f === undefined) out.set(k, OLDER);
    else if (f.prev !== undefined && f.seq <= mitt.upTo) out.set(k, f.prev ?? undefined);
    // else: read storage
  }
  return out;
}

/** Whether a downloaded page came by column. */
const isColumns = (p: readonly Entry[] | EntryColumns): p is EntryColumns => !Array.isArray(p);

/** How many entries a downloaded page holds. */
const sizeOf = (p: readonly Entry[] | EntryColumns): number => (isColumns(p) ? columnSize(p) : p.length);
