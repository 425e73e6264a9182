import type { Bucket, Client } from '@mittsync/peer';

/** Whether a bucket has caught up once, and the promise a suspended render waits on. */
interface Readiness {
  ready: boolean;
  error: unknown;
  promise: Promise<void>;
}

const readiness = new WeakMap<Bucket<unknown>, Readiness>();

/**
 * What a suspending `useBucket` needs to know of `bucket`, kept per handle so every render
 * sees the same promise. Ready means the bucket's status says `ready` (a catch-up completed
 * once, persisted, so an offline reload of a bucket joined before is ready at once) or
 * `whenReady()` resolved. The promise never rejects: a failure is kept in `error`, for the
 * render React retries to throw.
 */
export function readinessOf(client: Client, bucket: Bucket<unknown>): Readiness {
  let r = readiness.get(bucket);
  if (r !== undefined) return r;
  const rec: Readiness = { ready: bucket.status()?.ready === true, error: null, promise: Promise.resolve() };
  if (!rec.ready) {
    rec.promise = new Promise<void>((resolve) => {
      let settled = false;
      let off = (): void => {};
      const done = (error: unknown): void => {
        if (settled) return;
        settled = true;
        rec.ready = error === null;
        rec.error = error;
        off();
        resolve();
      };
      off = client.onStatus(() => {
        if (bucket.status()?.ready === true) done(null);
      });
      bucket.whenReady().then(
        // The status too, so the render React retries sees `bucket.status().ready`.
        () =>
          client.refreshStatus().then(
            () => done(null),
            () => done(null),
          ),
        (e: unknown) => done(e ?? new Error('whenReady failed')),
      );
    });
  }
  r = rec;
  readiness.set(bucket, r);
  return r;
}

/** Forgets a failed wait, so the next render tries again. */
export function forgetReadiness(bucket: Bucket<unknown>): void {
  readiness.delete(bucket);
}
