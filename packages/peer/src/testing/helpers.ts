import { inject } from 'vitest';
import { type ClientOptions, createClient } from '../client';
import { devToken } from '../dev-token';

/** The URL of the relay the global setup started. */
export const relayUrl = (): string => inject('relayUrl');

let n = 0;
const run = Math.random().toString(36).slice(2, 8);

/** A unique name (database or bucket) for this test run. */
export function uniq(prefix: string): string {
  return `${prefix}-${run}-${n++}`;
}

/** A client on the test relay with its own database unless `name` is given. */
export function client(opts: Partial<ClientOptions> = {}) {
  const relay = relayUrl();
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
    await new Promise((r) => setTimeout(r, 20));
  }
}
