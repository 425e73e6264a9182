import {
  type AckLevel,
  type BucketStatus,
  decodeFrame,
  type InvalidValueListener,
  MittsyncError,
  type ReadyInfo,
  type ReplicationSpec,
  type TypedValues,
  toMittsyncError,
  type Value,
} from '@mittsync/core';
import { LiveQueryState, type LiveResult, type Row } from './live-query';
import { typedWatch } from './typed-watch';
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
  /**
   * Typed buckets: write even over a value of a newer schema version. By default such a write
   * fails with `SCHEMA_OUTDATED` and nothing is written.
   */
  overwriteNewer?: boolean;
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

/**
 * A handle on one bucket: local reads and writes (at IndexedDB speed, through the worker)
 * and live queries. `T` is the type of the values read, `In` of the values written: both the
 * type you give (JSON-compatible), or a schema's output and input when the bucket was opened
 * with `{ schema }`. Then every write is checked in this tab before it goes to the worker (an
 * invalid value rejects with `INVALID_VALUE` naming the path and nothing is stored or queued),
 * and every value read (`get`, `scan`, `watch`) goes through the schema's migrations and
 * validation: one that does not fit is skipped and reported (`status().schema`, `onInvalid`).
 *
 * @example
 * ```ts
 * const todos = client.bucket<{ title: string; done: boolean }>('todos');
 * await todos.put('t1', { title: 'milk', done: false });
 * const stop = todos.watch({ prefix: 't' }, (r) => render(r.rows()));
 * ```
 */
export class Bucket<T = Value, In = T> {
  /**
   * Settles when the worker has opened the bucket (with the policy asked for, if any); rejects
   * with the reason it could not, such as `POLICY_CONFLICT`.
   */
  opened: Promise<unknown> = Promise.resolve();

  constructor(
    readonly name: string,
    private readonly link: BucketLink,
    /** The bucket's schema as this handle reads and writes it (undefined: untyped). */
    readonly typed?: TypedValues<T>,
  ) {}

  /** The value at `key`, or undefined (absent, or it does not fit the schema: then reported). */
  async get(key: string): Promise<T | undefined> {
    const [v] = await this.getMany([key]);
    return v;
  }

  /** Values at `keys`, in order (one round trip). */
  async getMany(keys: readonly string[]): Promise<(T | undefined)[]> {
    const bytes = await this.link.call({ op: 'get', bucket: this.name, keys });
    const found = decodeFrame(bytes) as (EntryTuple | null)[];
    const typed = this.typed;
    if (typed === undefined) return found.map((t) => (t === null || t[2] === 1 ? undefined : (t[3] as T)));
    return Promise.all(
      found.map(async (t, i) => {
        if (t === null || t[2] === 1) return undefined;
        const r = await typed.read(keys[i] as string, t[3]);
        return r.ok ? r.value : undefined;
      }),
    );
  }

  /** Sets `key` to `value`. */
  async put(key: string, value: In, opts?: WriteOptions): Promise<void> {
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
  async transact(fn: (tx: Transaction<In>) => void | Promise<void>, opts?: WriteOptions): Promise<void> {
    const writes: WriteSpec[] = [];
    await fn({
      put: (key, value) => void writes.push({ key, value: value as Value }),
      delete: (key) => void writes.push({ key, delete: true }),
    });
    if (writes.length > 0) await this.write(writes, opts);
  }

  private async write(writes: WriteSpec[], opts?: WriteOptions): Promise<void> {
    const typed = this.typed;
    // Checked here, before anything reaches the worker: a refused batch stores nothing.
    const checked =
      typed === undefined
        ? writes
        : await Promise.all(
            writes.map(async (w) =>
              'delete' in w ? w : { key: w.key, value: await typed.write(w.key, w.value) },
            ),
          );
    try {
      const status = await this.link.call({
        op: 'transact',
        bucket: this.name,
        writes: checked,
        ack: opts?.ack ?? 'local',
        ...(typed === undefined
          ? {}
          : { schemaVersion: typed.version, overwriteNewer: opts?.overwriteNewer === true }),
      });
      this.link.noteStatus(status);
    } catch (e) {
      if (e instanceof MittsyncError && e.code === 'SCHEMA_OUTDATED')
        typed?.noteNewer(Number(e.detail?.version));
      throw e;
    }
  }

  /** Rows by prefix or key range, in key order (with a schema: the readable ones). */
  async scan(query: ScanOptions = {}): Promise<Row<T>[]> {
    const bytes = await this.link.call({ op: 'scan', bucket: this.name, query });
    const tuples = decodeFrame(bytes) as EntryTuple[];
    const typed = this.typed;
    if (typed === undefined) return tuples.map((t) => ({ key: t[0], value: t[3] as T }));
    const out: Row<T>[] = [];
    for (const t of tuples) {
      const r = await typed.read(t[0], t[3]);
      if (r.ok) out.push({ key: t[0], value: r.value });
    }
    return out;
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
    const state = new LiveQueryState<unknown>();
    const deliver =
      this.typed === undefined
        ? (callback as (r: LiveResult<unknown>) => void)
        : typedWatch(this.typed, callback);
    this.link.register(id, state, deliver);
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

  /**
   * The bucket's last known sync status (phase, progress, pending writes, last error), with
   * `schema` for a typed bucket: its version, the newest version seen (`newerSeen`: a device
   * runs newer code) and values found unreadable.
   */
  status(): BucketStatus | undefined {
    const s = this.link.bucketStatus(this.name);
    if (s === undefined || this.typed === undefined) return s;
    return { ...s, schema: this.typed.status() };
  }

  /** Listens to values found not to fit this bucket's schema (typed buckets); returns the unsubscribe. */
  onInvalid(listener: InvalidValueListener): () => void {
    return this.typed?.onInvalid(listener) ?? (() => undefined);
  }
}
