import { type ClientOptions, createClient, devToken } from '@mittsync/peer';
import { inject } from 'vitest';

let n = 0;
const run = Math.random().toString(36).slice(2, 8);

/** A unique name (database or bucket) for this test run. */
export function uniq(prefix: string): string {
  return `${prefix}-${run}-${n++}`;
}

/** A client on the relay the global setup started, with its own database. */
export function client(opts: Partial<ClientOptions> = {}) {
  const relay = inject('relayUrl');
  return createClient({ relay, getToken: devToken(relay), name: uniq('db'), ...opts });
}

/** Polls `fn` until it returns true (or throws after `ms`). */
export async function until(
  fn: () => boolean | Promise<boolean>,
  ms = 20_000,
  what = 'condition',
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
