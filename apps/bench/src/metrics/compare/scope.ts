import { NotMeasured } from '../../metric';

/** What a bounded run registers to undo: closed in reverse order, once, even on a timeout. */
export interface Scope {
  defer(cleanup: () => unknown): void;
}

/**
 * Runs `fn` for at most `ms`: a compared system that gets stuck (a sync that never completes)
 * must not hang the bench. On a timeout, `fn`'s resources are closed under it (which fails
 * whatever it awaits) and the run throws {@link NotMeasured}.
 */
export async function bounded<T>(what: string, ms: number, fn: (scope: Scope) => Promise<T>): Promise<T> {
  const cleanups: (() => unknown)[] = [];
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      for (const c of cleanups.reverse()) {
        try {
          await c();
        } catch {
          // best effort: the rest still close
        }
      }
    })();
    return closing;
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new NotMeasured(`${what} did not finish within ${ms / 1000} s`)), ms);
  });
  const run = fn({ defer: (c) => void cleanups.push(c) });
  try {
    return await Promise.race([run, timedOut]);
  } finally {
    clearTimeout(timer);
    await close();
    run.catch(() => undefined); // failed by the closing, after the timeout was reported
  }
}
