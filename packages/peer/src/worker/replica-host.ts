import {
  type Entry,
  encodeFrame,
  MemoryReplicaStorage,
  MittsyncError,
  Replica,
  type ReplicaStorage,
  type ReplicationSpec,
  type ScanQuery,
  type SubscriptionPolicy,
  toMittsyncError,
  WebSocketTransport,
} from '@mittsync/core';
import type { AttachInfo, ClientStatus, DebugInfo, HostConfig, Query, Request } from './api';
import { HostedStorage, seedRescued } from './idb/hosted-storage';
import { IdbReplicaStorage } from './idb/storage';
import { mark, startupMarks } from './marks';
import { type EventSink, toTuple, WatchHub } from './watchers';

const REQUEST_TIMEOUT_MS = 15_000;
/** Samples of {@link DebugInfo.earlyMs} kept. */
const EARLY_SAMPLES = 4096;

/** Fetches a token for the replica (a page's `getToken`, called through comlink). */
export type TokenSource = (replicaId: string) => Promise<string>;

interface TabState {
  getToken: TokenSource | null;
  release: () => void;
  remote: boolean;
}

/** Sync endpoint of a relay given by its base URL or by the endpoint itself. */
export function syncUrl(relay: string): string {
  const u = new URL(relay);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  if (u.pathname === '/' || u.pathname === '') u.pathname = '/v1/sync';
  return u.toString();
}

function toScanQuery(q: Query): ScanQuery {
  if ('prefix' in q) return { prefix: q.prefix, ...(q.limit === undefined ? {} : { limit: q.limit }) };
  if ('start' in q || 'end' in q || 'limit' in q) {
    const r = q as { start?: string; end?: string; limit?: number };
    return {
      ...(r.start === undefined ? {} : { start: r.start }),
      ...(r.end === undefined ? {} : { end: r.end }),
      ...(r.limit === undefined ? {} : { limit: r.limit }),
    };
  }
  return {};
}

function indexedDbAvailable(): boolean {
  return typeof (globalThis as { indexedDB?: unknown }).indexedDB !== 'undefined';
}

/**
 * Hosts one {@link Replica} for every tab attached to this worker: opens it on IndexedDB when
 * the first tab attaches and closes it when the last one leaves, routes requests and live
 * queries, notices dead tabs (their Web Lock is released), and recovers from storage trouble:
 * a database deleted underneath is rebuilt and re-joined without losing local writes, and a
 * browser without IndexedDB gets a memory-only replica that says so in its status.
 */
export class ReplicaHost {
  private replica: Replica | null = null;
  private storage: HostedStorage | null = null;
  private starting: Promise<Replica> | null = null;
  private readonly tabs = new Map<string, TabState>();
  private readonly buckets = new Set<string>();
  private readonly hub: WatchHub;
  /** See {@link DebugInfo.earlyMs}. */
  private readonly earlyMs: number[] = [];
  private readonly resnapOnReady = new Set<string>();
  private error: { code: string; message: string } | null = null;
  private offStatus: (() => void)[] = [];
  private lifecycle: Promise<unknown> = Promise.resolve();
  /** Kept offline on request (`setOnline(false)`), across replica restarts. */
  private offline = false;

  constructor(
    readonly config: HostConfig,
    readonly hosting: ClientStatus['hosting'],
  ) {
    this.hub = new WatchHub((bucket, q) => this.read(bucket, q));
  }

  // -------------------------------------------------------------------------------------------
  // Tabs
  // -------------------------------------------------------------------------------------------

  /**
   * Attaches a tab: `sink` receives its events, `getToken` (if any) may be asked for tokens,
   * `release` runs when it detaches; `remote` marks a follower tab served for another worker.
   */
  async attach(
    tabId: string,
    sink: EventSink,
    getToken: TokenSource | null,
    release = () => {},
    remote = false,
  ): Promise<AttachInfo> {
    this.tabs.set(tabId, { getToken, release, remote });
    this.hub.addTab(tabId, sink);
    // The tab holds a lock named after itself for as long as it lives: when we are granted
    // it, the tab is gone (closed, crashed, navigated away) and its live queries go too.
    const locks = (globalThis as { navigator?: { locks?: LockManager } }).navigator?.locks;
    void locks?.request(`mittsync-tab:${tabId}`, () => this.detach(tabId));
    await this.ensure();
    return { status: this.status(tabId) };
  }

  async detach(tabId: string): Promise<void> {
    const tab = this.tabs.get(tabId);
    if (tab === undefined) return;
    this.tabs.delete(tabId);
    this.hub.removeTab(tabId);
    tab.release();
    if (this.tabs.size === 0) await this.shutdown();
  }

  get tabCount(): number {
    return this.tabs.size;
  }

  // -------------------------------------------------------------------------------------------
  // Replica lifecycle
  // -------------------------------------------------------------------------------------------

  private ensure(): Promise<Replica> {
    if (this.replica !== null) return Promise.resolve(this.replica);
    if (this.starting !== null) return this.starting;
    const p = this.lifecycle.then(() => this.start());
    this.track(p);
    return p;
  }

  private async token(replicaId: string): Promise<string> {
    if (this.config.token !== undefined) return this.config.token;
    mark('token asked');
    let last: unknown = new MittsyncError('UNAUTHENTICATED', 'no tab can provide a token');
    for (const tab of [...this.tabs.values()].reverse()) {
      if (tab.getToken === null) continue;
      try {
        const t = await tab.getToken(replicaId);
        mark('token got');
        return t;
      } catch (e) {
        last = e;
      }
    }
    throw last;
  }

  private async openStorage(): Promise<ReplicaStorage> {
    if (this.config.storage === 'memory') return new MemoryReplicaStorage();
    if (!indexedDbAvailable()) {
      this.error = {
        code: 'STORAGE_UNAVAILABLE',
        message: 'IndexedDB is not available here: data is kept in memory only and is lost on reload',
      };
      return new MemoryReplicaStorage();
    }
    const idb: IdbReplicaStorage = new IdbReplicaStorage({
      name: this.config.dbName,
      onLost: (err) => {
        this.error = { code: err.code, message: err.message };
        void this.rebuild(idb);
      },
    });
    try {
      await idb.open();
      return idb;
    } catch (e) {
      const err = toMittsyncError(e, 'STORAGE_UNAVAILABLE');
      this.error = {
        code: 'STORAGE_UNAVAILABLE',
        message: `IndexedDB could not be opened (${err.message}): data is kept in memory only and is lost on reload`,
      };
      return new MemoryReplicaStorage();
    }
  }

  private async start(rescued?: Parameters<typeof seedRescued>[1]): Promise<Replica> {
    mark('replica start');
    const inner = await this.openStorage();
    mark('storage open');
    if (rescued !== undefined) await seedRescued(inner, rescued);
    const transport = new WebSocketTransport({
      url: syncUrl(this.config.relay),
      token: () => this.token(replica.replicaId),
    });
    const storage: HostedStorage = new HostedStorage(inner, {
      onReset: (bucket, dropped) => {
        if (dropped) this.resnapOnReady.add(bucket);
      },
      ...(this.config.faults === undefined ? {} : { faults: this.config.faults }),
    });
    const replica = await Replica.open({
      storage,
      transport,
      ...(this.config.pageSize === undefined ? {} : { pageSize: this.config.pageSize }),
      ...(this.config.parallelRanges === undefined ? {} : { parallelRanges: this.config.parallelRanges }),
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      ...(this.config.mittMaxOps === undefined ? {} : { mitt: { maxOps: this.config.mittMaxOps } }),
      autoConnect: false,
    });
    this.offStatus = [
      replica.onChange(
        (bucket, entries, source) => this.hub.onChange(bucket, entries, source),
        (bucket) => this.hub.watches(bucket),
      ),
      // Live queries show remote changes while IndexedDB commits them (an IndexedDB round
      // trip sooner); the committed change that follows finds the page up to date. Snapshots
      // read through the replica, which waits for those commits: no gap between the two.
      replica.onApplying(
        (bucket, entries, committed) => {
          this.hub.onChange(bucket, entries, 'remote');
          const t0 = performance.now();
          void committed.then((ok) => {
            if (!ok) return;
            if (this.earlyMs.length >= EARLY_SAMPLES) this.earlyMs.shift();
            this.earlyMs.push(performance.now() - t0);
          });
        },
        (bucket) => this.hub.watches(bucket),
      ),
      replica.onStatus(() => this.hub.status((tab) => this.status(tab))),
      replica.onReady((info) => {
        if (this.resnapOnReady.delete(info.bucket)) void this.hub.resnap(info.bucket).catch(() => undefined);
      }),
    ];
    // A start-up mark, once: the listener leaves after the first connection.
    const offConnected = replica.onStatus((st) => {
      if (st.connection !== 'open') return;
      mark('connected');
      offConnected();
    });
    mark('replica open');
    this.replica = replica;
    this.storage = storage;
    for (const b of this.buckets) void replica.openBucket(b).catch(() => undefined);
    if (!this.offline) replica.connect();
    return replica;
  }

  private async stop(): Promise<void> {
    const r = this.replica;
    this.replica = null;
    for (const off of this.offStatus) off();
    this.offStatus = [];
    if (r !== null) await r.close();
  }

  /** Closes the replica now, whoever is still attached (the worker is about to go away). */
  close(): Promise<void> {
    for (const [tabId, tab] of this.tabs) {
      this.hub.removeTab(tabId);
      tab.release();
    }
    this.tabs.clear();
    return this.shutdown();
  }

  private shutdown(): Promise<void> {
    const p = this.lifecycle.then(() => this.stop());
    this.lifecycle = p.catch(() => undefined);
    return p;
  }

  /** The database went away underneath: re-join on a fresh one, keeping unacknowledged writes. */
  private rebuild(lost: IdbReplicaStorage): Promise<Replica> {
    const p = this.lifecycle.then(async () => {
      const current = this.replica;
      const rescued = lost.rescue() ?? undefined;
      await this.stop().catch(() => undefined);
      if (current === null || this.tabs.size === 0) return this.ensure();
      const replica = await this.start(rescued);
      this.hub.status((tab) => this.status(tab));
      await this.hub.resnap().catch(() => undefined);
      return replica;
    });
    this.track(p);
    return p;
  }

  /**
   * Makes `p` (a start or a rebuild) the replica being started: later lifecycle steps wait for
   * it, and it stops being the one once it settles, however it ends.
   */
  private track(p: Promise<Replica>): void {
    this.starting = p;
    this.lifecycle = p.catch(() => undefined);
    const done = () => {
      if (this.starting === p) this.starting = null;
    };
    p.then(done, done);
  }

  // -------------------------------------------------------------------------------------------
  // Requests
  // -------------------------------------------------------------------------------------------

  private async read(bucket: string, q: Query): Promise<Entry[]> {
    const r = await this.ensure();
    if ('key' in q) return (await r.getMany(bucket, [q.key])).filter((e): e is Entry => e !== undefined);
    if ('keys' in q) return (await r.getMany(bucket, q.keys)).filter((e): e is Entry => e !== undefined);
    return r.scan(bucket, toScanQuery(q));
  }

  /** The replica, with `bucket` open (and switched to `policy` or `spec` when one is given). */
  private async use(
    bucket: string,
    policy?: SubscriptionPolicy,
    spec?: ReplicationSpec | null,
  ): Promise<Replica> {
    const r = await this.ensure();
    if (!this.buckets.has(bucket) || policy !== undefined || spec !== undefined) {
      await r.openBucket(bucket, {
        ...(policy === undefined ? {} : { policy }),
        ...(spec === undefined ? {} : { spec }),
      });
      this.buckets.add(bucket);
    }
    return r;
  }

  /** Handles one request of one tab. */
  async request(tabId: string, req: Request): Promise<unknown> {
    switch (req.op) {
      case 'open':
        await this.use(req.bucket, req.policy, req.spec);
        return null;
      case 'setSpec': {
        const r = await this.use(req.bucket);
        await r.setSpec(req.bucket, req.spec);
        return null;
      }
      case 'get': {
        const r = await this.use(req.bucket);
        const found = await r.getMany(req.bucket, req.keys);
        return encodeFrame(found.map((e) => (e === undefined ? null : toTuple(e)))).slice();
      }
      case 'scan': {
        await this.use(req.bucket);
        const entries = await this.read(req.bucket, req.query);
        return encodeFrame(entries.map(toTuple)).slice();
      }
      case 'transact': {
        const r = await this.use(req.bucket);
        await r.transact(req.bucket, req.writes, {
          ack: req.ack,
          ...(req.schemaVersion === undefined
            ? {}
            : { schemaVersion: req.schemaVersion, overwriteNewer: req.overwriteNewer === true }),
        });
        // The writing tab's status comes with the reply, so it counts the write as pending as
        // soon as the write resolves (other tabs hear of it within STATUS_EVERY_MS).
        return this.status(tabId);
      }
      case 'watch':
        await this.use(req.bucket);
        await this.hub.watch(tabId, req.watchId, req.bucket, req.query);
        return null;
      case 'unwatch':
        this.hub.unwatch(tabId, req.watchId);
        return null;
      case 'ready': {
        const r = await this.use(req.bucket);
        return r.whenReady(req.bucket);
      }
      case 'refresh': {
        const r = await this.use(req.bucket);
        return r.refresh(req.bucket);
      }
      case 'online': {
        const r = await this.ensure();
        this.offline = !req.online;
        if (req.online) r.connect();
        else r.disconnect({ reconnect: false });
        return null;
      }
      case 'status':
        await this.ensure();
        return this.status(tabId);
      case 'debug':
        return this.debug();
    }
  }

  /** The status as `tabId` sees it (a follower tab is told it is one). */
  status(tabId?: string): ClientStatus {
    const r = this.replica;
    const s = r?.status();
    return {
      replicaId: s?.replicaId ?? '',
      connection: s?.connection ?? 'closed',
      persistent: s?.persistent ?? this.config.storage !== 'memory',
      hosting: tabId !== undefined && this.tabs.get(tabId)?.remote ? 'follower' : this.hosting,
      buckets: s?.buckets ?? [],
      error: this.error,
    };
  }

  private debug(): DebugInfo {
    const inner = this.storage?.inner;
    return {
      tabs: this.tabs.size,
      watchers: this.hub.size,
      storage: inner instanceof IdbReplicaStorage ? { ...inner.stats } : null,
      marks: startupMarks(),
      earlyMs: this.earlyMs.slice(),
    };
  }
}
