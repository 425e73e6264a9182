import type { Entry } from './model';

/**
 * Live entries from the relay that won against storage and are being committed: `committed`
 * resolves true once they are stored (their change event follows), false if the commit
 * failed (the bucket then resumes from its durable checkpoint and applies them again, or
 * what superseded them).
 */
export type ApplyingListener = (
  bucket: string,
  entries: readonly Entry[],
  committed: Promise<boolean>,
) => void;

/**
 * The replica's applying listeners and the commits announced to them: views hear of live
 * entries as their commit starts, and reads wait for the commits already announced (see
 * `Replica.onApplying`), so a read never misses what a view was shown.
 */
export class ApplyingCommits {
  private readonly listeners = new Map<ApplyingListener, ((bucket: string) => boolean) | undefined>();
  /** Announced commits still running, per bucket. */
  private readonly pending = new Map<string, Set<Promise<boolean>>>();

  /** Adds a listener (for the buckets `wants` accepts); returns the unsubscribe function. */
  on(listener: ApplyingListener, wants?: (bucket: string) => boolean): () => void {
    this.listeners.set(listener, wants);
    return () => this.listeners.delete(listener);
  }

  /** Announces `entries` of `bucket` whose `committed` commit just started, if anyone listens. */
  emit(bucket: string, entries: readonly Entry[], committed: Promise<void>): void {
    let settled: Promise<boolean> | undefined;
    for (const [l, wants] of this.listeners) {
      if (wants !== undefined && !wants(bucket)) continue;
      settled ??= this.track(bucket, committed);
      l(bucket, entries, settled);
    }
  }

  /** Resolves once every commit of `bucket` announced so far settled. */
  async settled(bucket: string): Promise<void> {
    const running = this.pending.get(bucket);
    if (running !== undefined) await Promise.all(running);
  }

  private track(bucket: string, committed: Promise<void>): Promise<boolean> {
    const done = committed.then(
      () => true,
      () => false,
    );
    let running = this.pending.get(bucket);
    if (running === undefined) {
      running = new Set();
      this.pending.set(bucket, running);
    }
    const set = running;
    set.add(done);
    void done.then(() => {
      set.delete(done);
      if (set.size === 0 && this.pending.get(bucket) === set) this.pending.delete(bucket);
    });
    return done;
  }
}
