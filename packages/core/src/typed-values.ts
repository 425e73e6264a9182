import type { Value } from './model';
import {
  type MaybePromise,
  prepareWrite,
  type ReadOutcome,
  readValue,
  type SchemaLike,
  toVersioned,
  type ValueIssue,
  type VersionedSchema,
} from './schema';

/** A value that could not be read through the bucket's schema, as reported. */
export interface InvalidValueReport {
  bucket: string;
  key: string;
  /** `invalid`: fails the schema or a migration; `newer`: written under a newer schema version. */
  reason: 'invalid' | 'newer';
  /** The schema version the value was written under. */
  version: number;
  /** The first issue's path (`items[2].price`; '' for the whole value) and message. */
  path: string;
  message: string;
  issues: ValueIssue[];
}

/** How a bucket's values fit this code's schema (in `BucketStatus.schema`). */
export interface SchemaStatus {
  /** The schema version this code reads and writes. */
  version: number;
  /**
   * The highest schema version seen in this bucket above `version` (null: none): some device
   * runs newer code. Those values are not read (reads skip them) and not written over.
   */
  newerSeen: number | null;
  /** Keys currently known to hold values this code cannot read (invalid or newer). */
  invalid: number;
  /** The latest such report. */
  lastInvalid: InvalidValueReport | null;
}

export type InvalidValueListener = (report: InvalidValueReport) => void;

/**
 * One bucket's schema as a handle uses it: checks writes, reads values through migrations and
 * validation, and keeps the bucket's {@link SchemaStatus}. Shared by the Node replica's bucket
 * handle and the browser peer's: a value that cannot be read is reported (status and
 * listeners), never thrown at the reader.
 */
export class TypedValues<T = unknown> {
  readonly schema: VersionedSchema;
  private newerSeen: number | null = null;
  private readonly unreadable = new Map<string, InvalidValueReport>();
  private last: InvalidValueReport | null = null;
  private readonly listeners = new Set<InvalidValueListener>();
  private readonly changed = new Set<() => void>();

  constructor(
    readonly bucket: string,
    schema: SchemaLike,
  ) {
    this.schema = toVersioned(schema);
  }

  get version(): number {
    return this.schema.version;
  }

  /** Checks a value to write and returns what to store (throws `INVALID_VALUE` with the path). */
  write(key: string, value: unknown): MaybePromise<Value> {
    return prepareWrite(this.schema, this.bucket, key, value);
  }

  /** Reads a stored value; unreadable ones are reported and come back as `{ ok: false }`. */
  read(key: string, stored: unknown): MaybePromise<ReadOutcome<T>> {
    const out = readValue<T>(this.schema, stored);
    if (out instanceof Promise) return out.then((o) => this.note(key, o));
    return this.note(key, out);
  }

  /** Forgets a key (it was deleted): it no longer counts as unreadable. */
  forget(key: string): void {
    if (this.unreadable.delete(key)) this.emitChanged();
  }

  private note(key: string, o: ReadOutcome<T>): ReadOutcome<T> {
    if (o.ok) {
      if (this.unreadable.delete(key)) this.emitChanged();
      return o;
    }
    const first = o.issues[0];
    const report: InvalidValueReport = {
      bucket: this.bucket,
      key,
      reason: o.reason,
      version: o.version,
      path: first?.path ?? '',
      message: first?.message ?? 'invalid',
      issues: o.issues,
    };
    const before = this.unreadable.get(key);
    this.unreadable.set(key, report);
    if (o.reason === 'newer' && (this.newerSeen === null || o.version > this.newerSeen))
      this.newerSeen = o.version;
    // The same value read again is not news.
    if (before !== undefined && before.message === report.message && before.version === report.version)
      return o;
    this.last = report;
    for (const l of this.listeners) l(report);
    this.emitChanged();
    return o;
  }

  /** Notes a schema version seen by some other way (a write refused over a newer value). */
  noteNewer(version: number): void {
    if (version > this.schema.version && (this.newerSeen === null || version > this.newerSeen)) {
      this.newerSeen = version;
      this.emitChanged();
    }
  }

  status(): SchemaStatus {
    return {
      version: this.schema.version,
      newerSeen: this.newerSeen,
      invalid: this.unreadable.size,
      lastInvalid: this.last,
    };
  }

  /** Listens to values found unreadable; returns the unsubscribe function. */
  onInvalid(listener: InvalidValueListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Listens to any change of {@link status}. */
  onStatusChange(listener: () => void): () => void {
    this.changed.add(listener);
    return () => this.changed.delete(listener);
  }

  private emitChanged(): void {
    for (const l of this.changed) l();
  }
}
