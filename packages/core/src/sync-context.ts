import type { BucketState } from './bucket-state';
import type { Env } from './env';
import type { MittsyncError } from './errors';
import type { HlcClock } from './hlc';
import type { Entry } from './model';
import type { ClientMessage } from './protocol';
import type { ReplicaStorage } from './storage';

/** Who changed entries: this replica's own writes or the relay's stream and downloads. */
export type ChangeSource = 'local' | 'remote';

/**
 * What the sync modules (catch-up, live stream, outbox, local writes) may ask of their owner,
 * the `Replica`. Each module takes a `Pick` of it plus the few hooks it needs from its
 * siblings, so its reach is written in its signature and a test can hand it small fakes.
 */
export interface SyncContext {
  /** Clock, timers and randomness (virtual in the simulator). */
  readonly env: Env;
  readonly storage: ReplicaStorage;
  readonly clock: HlcClock;
  /** Sends a frame to the relay; dropped unless the connection is open. */
  send(msg: ClientMessage): void;
  /** True while the relay connection is open. */
  isOpen(): boolean;
  /**
   * Tells change listeners about stored entries. A function is called only if some listener
   * wants the bucket (a bulk download's entries are made on demand).
   */
  emitChange(
    bucket: string,
    changed: readonly Entry[] | (() => readonly Entry[]),
    source: ChangeSource,
  ): void;
  /**
   * Tells applying listeners about live entries that won and whose commit just started
   * (`committed` is that commit), before they are stored.
   */
  emitApplying(bucket: string, entries: readonly Entry[], committed: Promise<void>): void;
  /** Tells status listeners that something shown in the status changed. */
  emitStatus(): void;
  /** Records an error on the bucket's status (it keeps syncing). */
  fail(b: BucketState, err: MittsyncError): void;
  /** Runs storage work one task at a time, in submission order. */
  serial<T>(fn: () => Promise<T>): Promise<T>;
  /**
   * Runs sync work of `b` on the serial queue. If it fails, what it took off the stream is
   * dropped and the bucket resumes from its last durable checkpoint after a backoff.
   */
  syncTask(b: BucketState, fn: () => Promise<void>): void;
}
