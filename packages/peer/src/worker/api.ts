import type {
  AckLevel,
  BucketStatus,
  ConnectionState,
  ReadyInfo,
  ReplicationSpec,
  SubscriptionPolicy,
  Value,
} from '@mittsync/core';

/**
 * The messages between a page and the worker hosting its replica. Calls are coarse (one per
 * user operation, whole key lists at once); results that can be big travel as msgpack bytes,
 * transferred rather than cloned. Shared by the page (types only) and the worker.
 */

/** How the worker should host the replica; every tab of one database must pass the same. */
export interface HostConfig {
  /** Relay base URL (`https://relay.example.com`) or its sync endpoint (`wss://.../v1/sync`). */
  relay: string;
  /** IndexedDB database name (and the name of the SharedWorker / locks). */
  dbName: string;
  /** `indexeddb` (default), or `memory`: keep nothing across reloads. */
  storage: 'indexeddb' | 'memory';
  /** A fixed token (when the page passed `token` rather than `getToken`). */
  token?: string;
  /** Replica tuning, passed to the core `Replica`. */
  pageSize?: number;
  parallelRanges?: number;
  /** Live ops the mitt holds in memory during a catch-up before spilling them to IndexedDB. */
  mittMaxOps?: number;
  /** @internal Fault injection for tests: see {@link QuotaFault}. */
  faults?: QuotaFault;
}

/**
 * @internal Simulated quota exhaustion (tests): of the commits writing at least `minPuts`
 * entries (catch-up pages, not single local writes), the first `skip` pass and the next
 * `times` fail with the error a real `QuotaExceededError` maps to.
 */
export interface QuotaFault {
  minPuts: number;
  skip: number;
  times: number;
}

/** What a query of a live query or a scan selects, in key order. */
export type Query =
  | { key: string }
  | { keys: readonly string[] }
  | { prefix: string; limit?: number }
  | { start?: string; end?: string; limit?: number };

/** One write of a transaction. */
export type WriteSpec = { key: string; value: Value } | { key: string; delete: true };

/** Status of the whole client, as pushed to every tab. */
export interface ClientStatus {
  replicaId: string;
  /** Relay connection. */
  connection: ConnectionState;
  /** False in memory-only mode: nothing survives a reload. */
  persistent: boolean;
  /** Who hosts the replica: a SharedWorker, or this/another tab's worker (fallback). */
  hosting: 'shared' | 'leader' | 'follower';
  buckets: BucketStatus[];
  /** The last storage-level problem (quota, database lost, no IndexedDB), if any. */
  error: { code: string; message: string } | null;
}

/** What the page gets back from `attach`. */
export interface AttachInfo {
  status: ClientStatus;
}

/** Requests a tab sends to the host (one per user-level operation). */
export type Request =
  | { op: 'open'; bucket: string; policy?: SubscriptionPolicy; spec?: ReplicationSpec | null }
  | { op: 'setSpec'; bucket: string; spec: ReplicationSpec | null }
  | { op: 'get'; bucket: string; keys: readonly string[] }
  | { op: 'scan'; bucket: string; query: Query }
  | {
      op: 'transact';
      bucket: string;
      writes: readonly WriteSpec[];
      ack: AckLevel;
      /** A typed bucket's schema version: refuse to write over newer-version values (`SCHEMA_OUTDATED`). */
      schemaVersion?: number;
      overwriteNewer?: boolean;
    }
  | { op: 'watch'; bucket: string; watchId: number; query: Query }
  | { op: 'unwatch'; watchId: number }
  | { op: 'ready'; bucket: string }
  | { op: 'refresh'; bucket: string }
  | { op: 'online'; online: boolean }
  | { op: 'status' }
  | { op: 'debug' };

/** Counters of the IndexedDB store, for benchmarks. */
export interface StorageStats {
  commits: number;
  /** Entries committed. */
  entries: number;
  /** Milliseconds spent in commits. */
  commitMs: number;
  /** Page records written. */
  pageRecords: number;
  /** Entries those page records held (against `entries`: the write amplification). */
  pageEntries: number;
}

/** Debug counters (tests and benchmarks). */
export interface DebugInfo {
  tabs: number;
  watchers: number;
  /** IndexedDB store counters (null in memory mode). */
  storage: StorageStats | null;
  /** Start-up milestones of the worker, wall-clock ms (see marks.ts). */
  marks: Record<string, number>;
  /**
   * How many ms before their IndexedDB commit ended live queries were given remote changes
   * (`Replica.onApplying`), for the last few thousand commits.
   */
  earlyMs: number[];
}

/** What each request resolves with. */
export type ResultOf<R extends Request> = R extends { op: 'get' | 'scan' }
  ? Uint8Array
  : R extends { op: 'transact' }
    ? ClientStatus
    : R extends { op: 'ready' | 'refresh' }
      ? ReadyInfo
      : R extends { op: 'status' }
        ? ClientStatus
        : R extends { op: 'debug' }
          ? DebugInfo
          : null;

/** Errors cross the worker boundary as data, so the page can rebuild a typed `MittsyncError`. */
export type Outcome<T> =
  | { ok: true; value: T }
  | { ok: false; error: { code: string; message: string; detail?: Record<string, unknown> } };

/**
 * Entries of a live-query delivery, by column. The worker keeps a mirror of what the page
 * holds for each live query, so it sends only entries newer than the page's and gives each
 * key a slot number (`i`): the page stores a delivery with array writes, without comparing
 * versions, slicing key strings or hashing them. Keys travel only for slots the page has not
 * seen (`k`, joined, `kl` their lengths, in slot order); slot numbers are given out from 0 by
 * each snapshot, in order. `x` is 1 per tombstone, and each value is its own msgpack slice of
 * `v` (value `j` is `v[o[j-1] ?? 0 .. o[j]]`), decoded only when the page looks at it. On the
 * page every column is a view into the transferred batch (see `event-frame.ts`).
 */
export interface SlotColumns {
  i: Uint32Array;
  k: string;
  kl: Uint32Array;
  x: Uint8Array;
  v: Uint8Array;
  o: Uint32Array;
}

/** Events the host pushes to a tab, in batches (see `event-frame.ts`). */
export type HostEvent =
  | { t: 'snap'; w: number; b: SlotColumns }
  | { t: 'chg'; w: number; b: SlotColumns; s: 'local' | 'remote' }
  | { t: 'status'; s: ClientStatus };

/** An entry on the worker-page link: `[key, hlc, deleted (0/1), value?]`. */
export type EntryTuple = [string, string, 0, Value] | [string, string, 1];

/** The object a worker exposes (through comlink) on each tab's port. */
export interface TabPort {
  /** Attaches the tab: the host starts (or reuses) the replica and sends events on `events`. */
  attach(
    tabId: string,
    config: HostConfig,
    events: MessagePort,
    getToken: ((replicaId: string) => Promise<string>) | null,
  ): Promise<Outcome<AttachInfo>>;
  request(tabId: string, req: Request): Promise<Outcome<unknown>>;
  /** Detaches the tab (its live queries stop); the replica closes when no tab is left. */
  detach(tabId: string): Promise<void>;
}
