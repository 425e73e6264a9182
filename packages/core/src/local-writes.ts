import type { BucketState } from './bucket-state';
import type { CatchUpRunner } from './catch-up';
import { checksumReplace } from './checksum';
import { MittsyncError } from './errors';
import { type Entry, type Op, opToEntry, type Value } from './model';
import type { Outbox } from './outbox';
import type { WireLimits } from './protocol';
import { unwrapVersion } from './schema';
import { policyOf } from './storage';
import type { SyncContext } from './sync-context';
import { utf8Length } from './utf8';
import { measureValue } from './validate';

/**
 * A typed bucket's guard on local writes: a `set` over a value written under a newer schema
 * version than `schemaVersion` is refused with `SCHEMA_OUTDATED` (unless `overwriteNewer`).
 * Checked against the stored value in the same serial task as the commit.
 */
export interface SchemaGuard {
  schemaVersion: number;
  overwriteNewer?: boolean;
}

/** One write of a `Replica.transact` batch. */
export type Write = { key: string; value: Value } | { key: string; delete: true };

/** What committing local writes needs from the replica, catch-up and the outbox. */
export interface LocalWriteContext
  extends Pick<SyncContext, 'storage' | 'clock' | 'emitChange' | 'emitStatus'> {
  /** The writer: origin of the ops. */
  readonly replicaId: string;
  /** A fresh join must not let its download overwrite these writes. */
  catchUp: Pick<CatchUpRunner, 'noteLocalWrites'>;
  /** Pushes the new ops. */
  outbox: Pick<Outbox, 'pump'>;
}

/**
 * Checks one write against the relay's limits and returns a copy of it: later mutation of
 * the caller's value cannot change what is stored and pushed.
 */
export function checkWrite(w: Write, limits: WireLimits): Write {
  if (typeof w.key !== 'string' || w.key.length === 0)
    throw new MittsyncError('BAD_MESSAGE', 'key must be a non-empty string');
  if (utf8Length(w.key) > limits.maxKeyBytes) {
    throw new MittsyncError('KEY_TOO_LARGE', `key is longer than ${limits.maxKeyBytes} bytes`);
  }
  if ('delete' in w) return { key: w.key, delete: true };
  const size = measureValue(w.value);
  if (size > limits.maxValueBytes) {
    throw new MittsyncError('VALUE_TOO_LARGE', `value of ${size} bytes exceeds ${limits.maxValueBytes}`);
  }
  return { key: w.key, value: copyValue(w.value) };
}

/**
 * Refuses writes to a `readOnly` bucket at once, before anything is stored. (A `copy` takes
 * writes: they stay local, see `Outbox.pump`.)
 */
export function checkWritable(b: BucketState): void {
  if (policyOf(b.meta) === 'readOnly') {
    throw new MittsyncError(
      'READ_ONLY',
      `bucket ${b.name} is open read-only: open it with policy 'replica' to write`,
      { detail: { bucket: b.name } },
    );
  }
}

/**
 * Commits checked writes to `b` atomically: consecutive originSeqs, a fresh HLC each, the
 * entries, their outbox ops and the updated checksum in one storage transaction. Then tells
 * listeners and starts pushing. Run it on the serial queue.
 */
export async function commitWrites(
  ctx: LocalWriteContext,
  b: BucketState,
  writes: readonly Write[],
  guard?: SchemaGuard,
): Promise<Op[]> {
  checkWritable(b);
  const bucket = b.name;
  const current = await ctx.storage.getEntries(
    bucket,
    writes.map((w) => w.key),
  );
  if (guard !== undefined && guard.overwriteNewer !== true)
    checkNotNewer(bucket, writes, current, guard.schemaVersion);
  const meta = { ...b.meta, sum: { ...b.meta.sum } };
  const latest = new Map<string, Entry | undefined>();
  const ops: Op[] = [];
  const puts: Entry[] = [];
  writes.forEach((w, i) => {
    const op: Op =
      'delete' in w
        ? {
            origin: ctx.replicaId,
            originSeq: meta.nextOriginSeq++,
            key: w.key,
            kind: 'del',
            hlc: ctx.clock.tick(),
          }
        : {
            origin: ctx.replicaId,
            originSeq: meta.nextOriginSeq++,
            key: w.key,
            kind: 'set',
            value: w.value,
            hlc: ctx.clock.tick(),
          };
    const entry = opToEntry(op, 0);
    checksumReplace(meta.sum, w.key, latest.has(w.key) ? latest.get(w.key) : current[i], entry);
    latest.set(w.key, entry);
    ops.push(op);
    puts.push(entry);
  });
  await ctx.storage.commit({ bucket, puts, outboxAdd: ops, meta, clock: ctx.clock.last() });
  b.meta = meta;
  b.outbox.push(...ops);
  ctx.catchUp.noteLocalWrites(b, puts);
  ctx.emitChange(bucket, puts, 'local');
  ctx.outbox.pump(b);
  ctx.emitStatus();
  return ops;
}

function checkNotNewer(
  bucket: string,
  writes: readonly Write[],
  current: readonly (Entry | undefined)[],
  schemaVersion: number,
): void {
  writes.forEach((w, i) => {
    const cur = current[i];
    if ('delete' in w || cur === undefined || cur.deleted === true) return;
    const { version } = unwrapVersion(cur.value);
    if (version > schemaVersion) {
      throw new MittsyncError(
        'SCHEMA_OUTDATED',
        `${bucket}/${w.key} holds a value of schema version ${version}, newer than this code's ${schemaVersion}: not written over (upgrade, or pass overwriteNewer)`,
        { detail: { bucket, key: w.key, version, schemaVersion } },
      );
    }
  });
}

/** Deep copy of a JSON value. */
function copyValue(v: Value): Value {
  if (typeof v !== 'object' || v === null) return v;
  if (Array.isArray(v)) return v.map(copyValue);
  const out: { [k: string]: Value } = {};
  for (const k in v) out[k] = copyValue(v[k] as Value);
  return out;
}
