import type { BucketStatus, ReadyInfo } from './bucket-state';
import { MittsyncError } from './errors';
import type { SchemaGuard, Write } from './local-writes';
import type { Entry, Op, Value } from './model';
import type { SubscriptionPolicy } from './protocol';
import type { SchemaLike } from './schema';
import type { ScanQuery } from './storage';
import type { ChangeSource } from './sync-context';
import { type InvalidValueListener, TypedValues } from './typed-values';

/** The part of `Replica` a bucket handle uses (kept structural: replica.ts imports this module). */
export interface HandleHost {
  openBucket(bucket: string, opts?: { policy?: SubscriptionPolicy }): Promise<void>;
  getMany(bucket: string, keys: readonly string[]): Promise<(Entry | undefined)[]>;
  scan(bucket: string, query: ScanQuery): Promise<Entry[]>;
  transact(
    bucket: string,
    writes: readonly Write[],
    opts?: { ack?: 'local' | 'relay' } & Partial<SchemaGuard>,
  ): Promise<readonly Op[]>;
  whenReady(bucket: string): Promise<ReadyInfo>;
  status(bucket: string): BucketStatus | undefined;
  onChange(
    listener: (bucket: string, entries: readonly Entry[], source: ChangeSource) => void,
    wants?: (bucket: string) => boolean,
  ): () => void;
}

/** Options of a typed write. */
export interface TypedWriteOptions {
  ack?: 'local' | 'relay';
  /** Write even over a value of a newer schema version (default: refuse with `SCHEMA_OUTDATED`). */
  overwriteNewer?: boolean;
}

/** One readable key and value of a typed bucket. */
export interface TypedRow<T> {
  key: string;
  value: T;
}

/** Collects the writes of {@link ReplicaBucket.transact}. */
export interface TypedTransaction<In> {
  put(key: string, value: In): void;
  delete(key: string): void;
}

/**
 * A handle on one bucket of a `Replica`, typed by its schema when opened with one:
 * `T` is what reads give (the schema's output), `In` what writes take (its input).
 *
 * @example
 * ```ts
 * const todos = replica.bucket('todos', { schema: z.object({ title: z.string() }) });
 * await todos.put('t1', { title: 'milk' });
 * const t = await todos.get('t1'); // { title: string } | undefined
 * ```
 */
export class ReplicaBucket<T = Value, In = T> {
  /** Settles when the bucket is open with the policy asked for (rejects with `POLICY_CONFLICT`). */
  readonly opened: Promise<void>;
  private readonly stopWatching: (() => void) | undefined;

  constructor(
    private readonly replica: HandleHost,
    readonly name: string,
    /** The schema in force (undefined: an untyped bucket). */
    readonly typed: TypedValues<T> | undefined,
    opts?: { policy?: SubscriptionPolicy },
  ) {
    this.opened = replica.openBucket(name, opts);
    this.opened.catch(() => undefined);
    const typedValues = typed;
    if (typedValues === undefined) return;
    // Values other devices write are checked as they arrive: a bad one is reported, not thrown.
    this.stopWatching = replica.onChange(
      (_bucket, entries, source) => {
        if (source !== 'remote') return;
        for (const e of entries) {
          if (e.deleted === true) typedValues.forget(e.key);
          else {
            const r = typedValues.read(e.key, e.value);
            if (r instanceof Promise) r.catch(() => undefined);
          }
        }
      },
      (b) => b === name,
    );
  }

  /** The value at `key` (undefined when absent, or when it does not fit the schema: then reported). */
  async get(key: string): Promise<T | undefined> {
    const [v] = await this.getMany([key]);
    return v;
  }

  /** Values at `keys`, in order. */
  async getMany(keys: readonly string[]): Promise<(T | undefined)[]> {
    const entries = await this.replica.getMany(this.name, keys);
    return Promise.all(
      entries.map(async (e, i) => (e === undefined ? undefined : this.readOne(keys[i] as string, e))),
    );
  }

  /** Readable rows by prefix or range, in key order (values that do not fit are skipped and reported). */
  async scan(query: ScanQuery): Promise<TypedRow<T>[]> {
    const entries = await this.replica.scan(this.name, query);
    const out: TypedRow<T>[] = [];
    for (const e of entries) {
      const v = await this.readOne(e.key, e);
      if (v !== undefined) out.push({ key: e.key, value: v });
    }
    return out;
  }

  private async readOne(key: string, e: Entry): Promise<T | undefined> {
    if (this.typed === undefined) return e.value as T;
    const r = await this.typed.read(key, e.value);
    return r.ok ? r.value : undefined;
  }

  /** Sets `key`: checked against the schema first, so an invalid value never reaches the outbox. */
  async put(key: string, value: In, opts?: TypedWriteOptions): Promise<void> {
    await this.transact((tx) => tx.put(key, value), opts);
  }

  /** Deletes `key`. */
  async delete(key: string, opts?: TypedWriteOptions): Promise<void> {
    await this.transact((tx) => tx.delete(key), opts);
  }

  /** Applies every write `fn` makes atomically; if any value is invalid, none is written. */
  async transact(
    fn: (tx: TypedTransaction<In>) => void | Promise<void>,
    opts?: TypedWriteOptions,
  ): Promise<void> {
    const writes: ({ key: string; value: unknown } | { key: string; delete: true })[] = [];
    await fn({
      put: (key, value) => void writes.push({ key, value }),
      delete: (key) => void writes.push({ key, delete: true }),
    });
    if (writes.length === 0) return;
    const typed = this.typed;
    const checked = await Promise.all(
      writes.map(async (w) =>
        'delete' in w || typed === undefined ? w : { key: w.key, value: await typed.write(w.key, w.value) },
      ),
    );
    try {
      await this.replica.transact(this.name, checked as { key: string; value: Value }[], {
        ...(opts?.ack === undefined ? {} : { ack: opts.ack }),
        ...(typed === undefined
          ? {}
          : { schemaVersion: typed.version, overwriteNewer: opts?.overwriteNewer === true }),
      });
    } catch (e) {
      if (e instanceof MittsyncError && e.code === 'SCHEMA_OUTDATED')
        typed?.noteNewer(Number(e.detail?.version));
      throw e;
    }
  }

  /** Resolves when the bucket has caught up with the relay. */
  whenReady(): Promise<ReadyInfo> {
    return this.replica.whenReady(this.name);
  }

  /** The bucket's sync status, with `schema` (version, newer versions seen, unreadable values) when typed. */
  status(): BucketStatus | undefined {
    return this.replica.status(this.name);
  }

  /** Listens to values found not to fit the schema (arriving from others, or read); returns the unsubscribe. */
  onInvalid(listener: InvalidValueListener): () => void {
    return this.typed?.onInvalid(listener) ?? (() => undefined);
  }

  /** Stops checking arriving values (the bucket keeps syncing). */
  close(): void {
    this.stopWatching?.();
  }
}

/** @internal The typed values of a schema for a bucket (what `Replica.bucket` makes). */
export function typedValuesFor<T>(name: string, schema: SchemaLike | undefined): TypedValues<T> | undefined {
  return schema === undefined ? undefined : new TypedValues<T>(name, schema);
}
