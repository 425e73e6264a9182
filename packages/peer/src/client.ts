import {
  isVersionedSchema,
  MittsyncError,
  type OpenBucketOptions,
  type SchemaInput,
  type SchemaLike,
  type SchemaOutput,
  TypedValues,
  type Value,
  type VersionedSchema,
} from '@mittsync/core';
import { randomId } from '@mittsync/core/model';
import * as Comlink from 'comlink';
import { Bucket, type BucketLink } from './bucket';
import { connectWorker, type Hosting, holdTabLock, type WorkerLink } from './connect';
import type { LiveQueryState, LiveResult } from './live-query';
import type { AttachInfo, ClientStatus, HostConfig, Outcome, Request, ResultOf } from './worker/api';
import { decodeEvents } from './worker/event-frame';

/** Options of {@link createClient}. */
export interface ClientOptions {
  /** Relay base URL (`https://relay.example.com`) or its sync endpoint (`wss://.../v1/sync`). */
  relay: string;
  /** A fixed token... */
  token?: string;
  /** ...or a function fetching one for this replica (called before each connection). */
  getToken?: (ctx: { replicaId: string }) => string | Promise<string>;
  /** IndexedDB database name (default `mittsync`); tabs with the same name share one replica. */
  name?: string;
  /** `auto` (default): a SharedWorker where there is one; `dedicated`: the per-tab fallback with leader election. */
  hosting?: Hosting;
  /** `indexeddb` (default) or `memory` (nothing persists; the status says `persistent: false`). */
  storage?: 'indexeddb' | 'memory';
  /** The worker script, if your bundler doesn't handle `new URL('./worker/entry.ts', import.meta.url)`. */
  workerUrl?: string | URL;
  /**
   * Catch-up tuning: entries per downloaded page, key ranges fetched in parallel, and live ops
   * held in memory during a catch-up before they spill to IndexedDB.
   */
  sync?: { pageSize?: number; parallelRanges?: number; mittMaxOps?: number };
  /** @internal Fault injection for tests (see HostConfig.faults). */
  faults?: HostConfig['faults'];
}

type Watch = { state: LiveQueryState<unknown>; cb: (r: LiveResult<unknown>) => void };

/**
 * A connection from this tab to the replica of its origin (hosted in a worker). Create it
 * with {@link createClient}; get bucket handles with {@link Client.bucket}.
 */
export class Client {
  /** This tab's id (also the name of the Web Lock that tells the worker the tab is alive). */
  readonly tabId = `t${randomId(Math.random, 12)}`;
  /** Resolves once the worker has opened the replica for this tab (rejects if it could not). */
  readonly ready: Promise<void>;
  private link: WorkerLink | null = null;
  private events: MessageChannel | null = null;
  private releaseTab: (() => void) | null = null;
  private lastStatus: ClientStatus | null = null;
  private readonly statusListeners = new Set<(s: ClientStatus) => void>();
  private readonly watches = new Map<number, Watch>();
  private readonly handles = new Map<string, Bucket<unknown, unknown>>();
  private readonly inflight = new Set<(e: MittsyncError) => void>();
  private watchIds = 1;
  private closed = false;

  constructor(private readonly opts: ClientOptions) {
    this.ready = this.start();
    this.ready.catch(() => undefined);
  }

  private async start(): Promise<void> {
    const dbName = this.opts.name ?? 'mittsync';
    // The worker starts (~60-100 ms here) while the tab's lock is taken; it is only asked to
    // attach the tab once the lock is held, since it watches that lock to see the tab die.
    const link = connectWorker(dbName, this.opts.hosting ?? 'auto', this.opts.workerUrl);
    this.link = link;
    this.releaseTab = await holdTabLock(this.tabId);
    if (this.closed) {
      // Killed while waiting for the lock: shutdown() ran before there was a lock to release.
      this.releaseTab();
      throw new MittsyncError('CLOSED', 'client closed while starting');
    }
    const events = new MessageChannel();
    this.events = events;
    events.port1.onmessage = (ev: MessageEvent<Uint8Array>) => this.onEvents(ev.data);
    const config: HostConfig = {
      relay: this.opts.relay,
      dbName,
      storage: this.opts.storage ?? 'indexeddb',
      ...(this.opts.token === undefined ? {} : { token: this.opts.token }),
      ...(this.opts.sync?.pageSize === undefined ? {} : { pageSize: this.opts.sync.pageSize }),
      ...(this.opts.sync?.parallelRanges === undefined
        ? {}
        : { parallelRanges: this.opts.sync.parallelRanges }),
      ...(this.opts.sync?.mittMaxOps === undefined ? {} : { mittMaxOps: this.opts.sync.mittMaxOps }),
      ...(this.opts.faults === undefined ? {} : { faults: this.opts.faults }),
    };
    const getToken = this.opts.getToken;
    const tokenProxy =
      getToken === undefined
        ? null
        : Comlink.proxy(async (replicaId: string) => String(await getToken({ replicaId })));
    const out = await this.track(
      link.port.attach(
        this.tabId,
        config,
        Comlink.transfer(events.port2, [events.port2]),
        tokenProxy,
      ) as Promise<Outcome<AttachInfo>>,
    );
    const info = unwrap(out);
    this.setStatus(info.status);
  }

  /** Rejects with `CLOSED` if the client is closed or its worker killed while `p` is pending. */
  private track<T>(p: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const abort = (e: MittsyncError) => reject(e);
      this.inflight.add(abort);
      p.then(resolve, reject).finally(() => this.inflight.delete(abort));
    });
  }

  private async call<R extends Request>(req: R): Promise<ResultOf<R>> {
    if (this.closed) throw new MittsyncError('CLOSED', 'client is closed');
    await this.ready;
    const link = this.link as WorkerLink;
    const out = await this.track(link.port.request(this.tabId, req) as Promise<Outcome<unknown>>);
    return unwrap(out) as ResultOf<R>;
  }

  /**
   * A batch of events from the worker: a `Uint8Array` whose buffer was transferred, read in
   * place (live-query slots keep views into it). `new Uint8Array(bytes)` here would copy
   * ~100 KB per 1,000-change delivery into fresh memory: ~0.4 ms of main-thread time at the
   * median, most of what a delivery cost.
   */
  private onEvents(bytes: Uint8Array): void {
    const events = decodeEvents(bytes);
    for (const ev of events) {
      if (ev.t === 'status') {
        this.setStatus(ev.s);
        continue;
      }
      const w = this.watches.get(ev.w);
      if (w === undefined) continue;
      const result = ev.t === 'snap' ? w.state.snapshot(ev.b) : w.state.apply(ev.b, ev.s);
      if (result !== null) w.cb(result);
    }
  }

  private setStatus(s: ClientStatus): void {
    this.lastStatus = s;
    if (this.statusListeners.size === 0) return;
    const shown = this.withSchemas(s);
    for (const l of this.statusListeners) l(shown);
  }

  /** The worker's status with each typed bucket's `schema` (known in this tab only). */
  private withSchemas(s: ClientStatus): ClientStatus {
    let typed = false;
    const buckets = s.buckets.map((b) => {
      const schema = this.handles.get(b.bucket)?.typed?.status();
      if (schema === undefined) return b;
      typed = true;
      return { ...b, schema };
    });
    return typed ? { ...s, buckets } : s;
  }

  /** A typed handle's schema status changed: listeners hear it with the last status. */
  private watchSchema(name: string, typed: TypedValues<unknown>): void {
    typed.onStatusChange(() => {
      if (this.lastStatus !== null && this.handles.get(name)?.typed === typed)
        this.setStatus(this.lastStatus);
    });
  }

  /**
   * A handle on `name` (opened for sync on first use). `T` is the type of its values.
   * `opts.policy` sets how this device holds the bucket (`replica`, `readOnly` or `copy`; see
   * `OpenBucketOptions` in `@mittsync/core`): persisted, so later calls without one keep it,
   * and a different one switches it. `handle.opened` rejects when the switch is refused
   * (`POLICY_CONFLICT`). `opts.spec` holds only part of the bucket (key prefixes and ranges,
   * optionally some top-level fields; see `ReplicationSpec`), persisted the same way; change it
   * live with `handle.setSpec(spec)`.
   *
   * `opts.schema` makes it a typed bucket: any Standard Schema validator (Zod, Valibot,
   * ArkType...) or a versioned one from `defineSchema`. Reads are typed by its output and
   * writes by its input; see {@link Bucket} and docs/schemas.md.
   *
   * @example
   * ```ts
   * const prices = client.bucket('prices', { policy: 'copy' });
   * await prices.whenReady(); // a consistent copy, detached
   * const todos = client.bucket('todos', { schema: z.object({ title: z.string() }) });
   * await todos.put('t1', { title: 'milk' }); // checked before it is stored
   * ```
   */
  bucket<S extends SchemaLike>(
    name: string,
    opts: BucketOptions<S> & { schema: S },
  ): Bucket<SchemaOutput<S>, SchemaInput<S>>;
  bucket<T = Value>(name: string, opts?: OpenBucketOptions): Bucket<T>;
  bucket(name: string, opts?: BucketOptions): Bucket<unknown, unknown> {
    let b = this.handles.get(name);
    const schema = opts?.schema;
    if (b !== undefined && (opts?.policy !== undefined || opts?.spec !== undefined)) {
      b.opened = this.call({
        op: 'open',
        bucket: name,
        ...(opts.policy === undefined ? {} : { policy: opts.policy }),
        ...(opts.spec === undefined ? {} : { spec: opts.spec }),
      });
      b.opened.catch(() => undefined);
    }
    // A handle with another schema (or none, when one is asked for) is a new handle on the
    // same bucket: each keeps the schema it was made with.
    if (b !== undefined && schema !== undefined && b.typed?.schema !== toVersionedOnce(b, schema)) {
      const typed = new TypedValues<unknown>(name, schema);
      this.watchSchema(name, typed);
      const opened = b.opened;
      b = new Bucket<unknown, unknown>(name, this.bucketLink(), typed);
      b.opened = opened;
      this.handles.set(name, b);
    }
    if (b === undefined) {
      const typed = schema === undefined ? undefined : new TypedValues<unknown>(name, schema);
      if (typed !== undefined) this.watchSchema(name, typed);
      b = new Bucket<unknown, unknown>(name, this.bucketLink(), typed);
      this.handles.set(name, b);
      b.opened = this.call({
        op: 'open',
        bucket: name,
        ...(opts?.policy === undefined ? {} : { policy: opts.policy }),
        ...(opts?.spec === undefined ? {} : { spec: opts.spec }),
      });
      b.opened.catch(() => undefined);
    }
    return b;
  }

  private bucketLink(): BucketLink {
    return {
      call: (req) => this.call(req),
      register: (id, state, cb) => void this.watches.set(id, { state, cb }),
      unregister: (id) => void this.watches.delete(id),
      nextWatchId: () => this.watchIds++,
      bucketStatus: (bucket) => this.lastStatus?.buckets.find((x) => x.bucket === bucket),
      noteStatus: (s) => this.setStatus(s),
    };
  }

  /**
   * The last status the worker reported (null before the first), with `schema` on the buckets
   * this tab opened with a schema.
   */
  get status(): ClientStatus | null {
    return this.lastStatus === null ? null : this.withSchemas(this.lastStatus);
  }

  /** Listens to status changes: connection, per-bucket phase and progress, pending writes, errors. */
  onStatus(listener: (s: ClientStatus) => void): () => void {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
  }

  /**
   * Cuts (`false`) or restores (`true`) the replica's relay connection, for every tab sharing
   * it. Offline, reads and writes go on locally; writes wait in the outbox and are pushed on
   * reconnect, which resumes each bucket from its checkpoint.
   */
  async setOnline(online: boolean): Promise<void> {
    await this.call({ op: 'online', online });
  }

  /** Asks the worker for a fresh status. */
  async refreshStatus(): Promise<ClientStatus> {
    const s = await this.call({ op: 'status' });
    this.setStatus(s);
    return this.withSchemas(s);
  }

  /** @internal Debug counters of the hosting worker (benchmarks). */
  debug(): Promise<ResultOf<{ op: 'debug' }>> {
    return this.call({ op: 'debug' });
  }

  /**
   * Detaches this tab: live queries stop, pending calls reject with `CLOSED`. Writes already
   * acknowledged stay stored and are pushed by whichever tab hosts the replica next.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.ready.catch(() => undefined);
    const link = this.link;
    if (link !== null) await link.port.detach(this.tabId).catch(() => undefined);
    this.shutdown('client closed');
  }

  /** @internal Kills the worker link without detaching, like a crashed tab or worker (tests). */
  kill(): void {
    this.closed = true;
    this.shutdown('worker killed');
  }

  private shutdown(why: string): void {
    const err = new MittsyncError('CLOSED', `${why}: the outcome of calls in flight is unknown`);
    for (const abort of this.inflight) abort(err);
    this.inflight.clear();
    this.watches.clear();
    this.events?.port1.close();
    this.link?.port[Comlink.releaseProxy]();
    this.link?.terminate();
    this.releaseTab?.();
  }
}

/** Options of {@link Client.bucket}: a policy and, for a typed bucket, its schema. */
export interface BucketOptions<S extends SchemaLike = SchemaLike> extends OpenBucketOptions {
  /** Any Standard Schema validator, or a versioned schema from `defineSchema`. */
  schema?: S;
}

/** The handle's schema when `schema` is the one it was made with (a plain validator is wrapped once). */
function toVersionedOnce(b: Bucket<unknown, unknown>, schema: SchemaLike): VersionedSchema | SchemaLike {
  const held = b.typed?.schema;
  if (held === undefined) return schema;
  if (isVersionedSchema(schema)) return schema;
  return held.version === 1 && held.schema === schema ? held : schema;
}

function unwrap<T>(out: Outcome<T>): T {
  if (out.ok) return out.value;
  throw new MittsyncError(out.error.code as MittsyncError['code'], out.error.message, {
    ...(out.error.detail === undefined ? {} : { detail: out.error.detail }),
  });
}

/**
 * Connects this tab to the replica of its origin, hosted in a SharedWorker (or, where there
 * is none, in a leader tab's worker).
 *
 * @example
 * ```ts
 * const client = createClient({ relay: 'https://relay.example.com', getToken: fetchToken });
 * const todos = client.bucket<{ title: string }>('todos');
 * await todos.put('t1', { title: 'milk' });
 * todos.watch({ prefix: '' }, (r) => render(r.rows()));
 * ```
 */
export function createClient(opts: ClientOptions): Client {
  if (opts.token === undefined && opts.getToken === undefined) {
    throw new MittsyncError('UNAUTHENTICATED', 'createClient needs `token` or `getToken`');
  }
  return new Client(opts);
}
