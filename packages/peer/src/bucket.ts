import {
  type AckLevel,
  type BucketStatus,
  decodeFrame,
  type MittsyncError,
  type ReadyInfo,
  type ReplicationSpec,
  toMittsyncError,
  type Value,
} from '@mittsync/core';
import { LiveQueryState, type LiveResult, type Row } from './live-query';
import type { ClientStatus, EntryTuple, Query, Request, ResultOf, WriteSpec } from './worker/api';

/** What a bucket handle needs from its client. */
export interface BucketLink {
  call<R extends Request>(req: R): Promise<ResultOf<R>>;
  register(id: number, state: LiveQueryState<unknown>, cb: (r: LiveResult<unknown>) => void): void;
  unregister(id: number): void;
  nextWatchId(): number;
  bucketStatus(bucket: string): BucketStatus | undefined;
  /** A status newer than the last event (a write's reply carries one). */
  noteStatus(s: ClientStatus): void;
}

/** Options of a write. */
export interface WriteOptions {
  /**
   * `local` (default): resolves once committed to IndexedDB with its outbox entry.
   * `relay`: once the relay has committed it too.
   */
  ack?: AckLevel;
}

/** A scan: by prefix or by key range (`start` inclusive, `end` exclusive), at most `limit` rows. */
export type ScanOptions =
  | { prefix: string; limit?: number }
  | { start?: string; end?: string; limit?: number };

/** What a live query selects: one key, some keys, a prefix or a range (limits apply to the initial result). */
export type WatchQuery = Query;

/** Collects the writes of {@link Bucket.transact}. */
export interface Transaction<T> {
  put(key: string, value: T): void;
  delete(key: string): void;
}

function rowsOf<T>(bytes: Uint8Array): Row<T>[] {
  const tuples = decodeFrame(bytes) as EntryTuple[];
  return tuples.map((t) => ({ key: t[0], value: t[3] as T }));
}

/**
 * A handle on one bucket: local reads and writes (at IndexedDB speed, through the worker)
 * and live queries. `T` is the type of the values you store (JSON-compatible).
 *
 * @example
 * ```ts
 * const todos = client.bucket<{ title: string; done: boolean }>('todos');
 * await todos.put('t1', { title: 'milk', done: false });
 * const stop = todos.watch({ prefix: 't' }, (r) => render(r.rows()));
 * ```
 */
export class Bucket<T = Value> {
  /**
   * Settles when the worker has opened the bucket (with the policy asked for, if any); rejects
   * with the reason it could not, such as `POLICY_CONFLICT`.
   */
  opened: Promise<unknown> = Promise.resolve();

  constructor(
    readonly name: string,
    private readonly link: BucketLink,
  ) {}

  /** The value at `key`, or undefined. */
  async get(key: string): Promise<T | undefined> {
    const [v] = await this.getMany([key]);
    return v;
  }

  /** Values at `keys`, in order (one round trip). */
  async getMany(keys: readonly string[]): Promise<(T | undefined)[]> {
    const bytes = await this.link.call({ op: 'get', bucket: this.name, keys });
    const found = decodeFrame(bytes) as (EntryTuple | null)[];
    return found.map((t) => (t === null || t[2] === 1 ? undefined : (t[3] as T)));
  }

  /** Sets `key` to `value`. */
  async put(key: string, value: T, opts?: WriteOptions): Promise<void> {
    await this.write([{ key, value: value as Value }], opts);
  }

  /** Deletes `key`. */
  async delete(key: string, opts?: WriteOptions): Promise<void> {
    await this.write([{ key, delete: true }], opts);
  }

  /**
   * Applies every write `fn` makes as one atomic batch: all stored (with their outbox
   * entries) in one IndexedDB transaction, or none. Reads inside `fn` are not isolated.
   */
  async transact(fn: (tx: Transaction<T>) => void | Promise<void>, opts?: WriteOptions): Promise<void> {
    const writes: WriteSpec[] = [];
    await fn({
      put: (key, value) => void writes.push({ key, value: value as Value }),
      delete: (key) => void writes.push({ key, delete: true }),
    });
    if (writes.length > 0) await this.write(writes, opts);
  }

  private async write(writes: WriteSpec[], opts?: WriteOptions): Promise<void> {
    const status = await this.link.call({
      op: 'transact',
      bucket: this.name,
      writes,
      ack: opts?.ack ?? 'local',
    });
    this.link.noteStatus(status);
  }

  /** Rows by prefix or key range, in key order. */
  async scan(query: ScanOptions = {}): Promise<Row<T>[]> {
    const bytes = await this.link.call({ op: 'scan', bucket: this.name, query });
    return rowsOf<T>(bytes);
  }

  /**
   * A live query: `callback` gets the initial result, then every change, with no gap between
   * them; `onError` hears if it could not start. Returns the function that stops it.
   */
  watch(
    query: WatchQuery,
    callback: (result: LiveResult<T>) => void,
    onError?: (err: MittsyncError) => void,
  ): () => void {
    const id = this.link.nextWatchId();
    const state = new LiveQueryState<T>();
    this.link.register(id, state as LiveQueryState<unknown>, callback as (r: LiveResult<unknown>) => void);
    const started = this.link.call({ op: 'watch', bucket: this.name, watchId: id, query });
    started.catch((e: unknown) => {
      this.link.unregister(id);
      onError?.(toMittsyncError(e));
    });
    return () => {
      this.link.unregister(id);
      void started.then(() => this.link.call({ op: 'unwatch', watchId: id })).catch(() => undefined);
    };
  }

  /** Resolves when the bucket has caught up with the relay (joined or resumed). */
  whenReady(): Promise<ReadyInfo> {
    return this.link.call({ op: 'ready', bucket: this.name });
  }

  /**
   * Brings a `copy` up to date with only what changed since its checkpoint, then detaches it
   * again; resolves when done. For a live bucket it is {@link whenReady}.
   */
  refresh(): Promise<ReadyInfo> {
    return this.link.call({ op: 'refresh', bucket: this.name });
  }

  /**
   * Changes the part of the bucket this device holds, live: widening downloads only the newly
   * covered keys, narrowing drops the ones no longer covered (see `Replica.setSpec`); `null`
   * holds the whole bucket again. Resolves once the change is stored (then `whenReady`).
   */
  async setSpec(spec: ReplicationSpec | null): Promise<void> {
    await this.link.call({ op: 'setSpec', bucket: this.name, spec });
  }

  /** The bucket's last known sync status (phase, progress, pending writes, last error). */
  status(): BucketStatus | undefined {
    return this.link.bucketStatus(this.name);
  }
}
