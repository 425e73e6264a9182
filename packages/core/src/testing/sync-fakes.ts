import type { BucketState } from '../bucket-state';
import { newBucketState } from '../bucket-state';
import type { Env } from '../env';
import type { MittsyncError } from '../errors';
import { encodeHlc, HlcClock } from '../hlc';
import { MemoryReplicaStorage } from '../memory-storage';
import type { Entry, Op, SeqOp, Value } from '../model';
import type { ClientMessage } from '../protocol';
import { Scheduler } from '../sim/scheduler';
import { newBucketMeta, type ReplicaStorage } from '../storage';
import type { ChangeSource, SyncContext } from '../sync-context';

/**
 * Small fakes for testing the sync modules (catch-up, live stream, outbox, local writes) one
 * at a time: a {@link SyncContext} on virtual time and memory storage that records what the
 * module sent, emitted and failed.
 */

// Node's setImmediate where there is one (these helpers build without Node's types).
const nextTurn: (fn: () => void) => void =
  (globalThis as { setImmediate?: (fn: () => void) => void }).setImmediate ?? ((fn) => setTimeout(fn, 0));

/** Lets every pending promise settle (the storage fakes resolve on the microtask queue). */
export const settle = (): Promise<void> => new Promise<void>((r) => nextTurn(r));

/** HLC at wall time `wall` of replica `node` (`hlc(2) > hlc(1)`). */
export const hlc = (wall: number, node = 'rA'): string => encodeHlc(wall, 0, node);

/** A live op as the relay delivers it. */
export function seqOp(seq: number, key: string, wall: number, value?: Value | undefined): SeqOp {
  const base = { origin: 'rW', originSeq: seq, key, hlc: hlc(wall, 'rW'), seq };
  return value === undefined ? { ...base, kind: 'del' } : { ...base, kind: 'set', value };
}

/** A stored or downloaded entry. */
export function entry(key: string, wall: number, value?: Value | undefined, seq = 1): Entry {
  return value === undefined
    ? { key, hlc: hlc(wall, 'rW'), seq, deleted: true }
    : { key, hlc: hlc(wall, 'rW'), seq, value };
}

/** A local op of replica `rA`. */
export function localOp(originSeq: number, key: string, value: Value = originSeq): Op {
  return { origin: 'rA', originSeq, key, kind: 'set', value, hlc: hlc(originSeq) };
}

/** A {@link SyncContext} on virtual time, recording what the module under test did. */
export interface FakeSync extends SyncContext {
  readonly storage: MemoryReplicaStorage;
  readonly sched: Scheduler;
  /** Frames sent, in order. */
  readonly sent: ClientMessage[];
  readonly changes: { bucket: string; entries: readonly Entry[]; source: ChangeSource }[];
  /** Live entries announced while their commit ran, with that commit. */
  readonly applying: { bucket: string; entries: readonly Entry[]; committed: Promise<void> }[];
  readonly errors: { bucket: string; code: string }[];
  /** Sync tasks that threw. */
  readonly failedTasks: unknown[];
  statuses: number;
  /** Whether the connection counts as open (`send` drops frames otherwise). */
  open: boolean;
  /** Advances virtual time by `ms`, running due timers and settling promises between them. */
  run(ms: number): Promise<void>;
}

export function fakeSync(storage: ReplicaStorage = new MemoryReplicaStorage()): FakeSync {
  const sched = new Scheduler();
  const env: Env = {
    now: () => 1_700_000_000_000 + sched.now,
    setTimeout: (fn, ms) => sched.setTimeout(fn, ms),
    clearTimeout: (h) => sched.clearTimeout(h),
    random: () => 0.5,
  };
  let tail: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => undefined);
    return run;
  };
  const f: FakeSync = {
    env,
    storage: storage as MemoryReplicaStorage,
    clock: new HlcClock('rA', env.now),
    sched,
    sent: [],
    changes: [],
    applying: [],
    errors: [],
    failedTasks: [],
    statuses: 0,
    open: true,
    send: (msg) => {
      if (f.open) f.sent.push(msg);
    },
    isOpen: () => f.open,
    emitChange: (bucket, changed, source) => {
      const entries = typeof changed === 'function' ? changed() : changed;
      if (entries.length > 0) f.changes.push({ bucket, entries, source });
    },
    emitApplying: (bucket, entries, committed) => {
      f.applying.push({ bucket, entries, committed });
    },
    emitStatus: () => {
      f.statuses++;
    },
    fail: (b: BucketState, err: MittsyncError) => {
      f.errors.push({ bucket: b.name, code: err.code });
    },
    serial,
    syncTask: (_b, fn) => {
      serial(fn).catch((e: unknown) => f.failedTasks.push(e));
    },
    run: (ms) => sched.runUntil(sched.now + ms, settle),
  };
  return f;
}

/** A bucket nothing is known about, with `outbox` as its unacknowledged ops. */
export function freshBucket(name = 'b', outbox: Op[] = []): BucketState {
  const meta = newBucketMeta(name);
  if (outbox.length > 0) meta.nextOriginSeq = (outbox[outbox.length - 1] as Op).originSeq + 1;
  return newBucketState(meta, outbox);
}

/** Stored entries of `bucket` as `key -> value` (tombstones as `null`-free `'<deleted>'`). */
export function storedValues(storage: MemoryReplicaStorage, bucket = 'b'): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, e] of [...storage.peek(bucket)].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
    out[k] = e.deleted ? '<deleted>' : e.value;
  return out;
}
