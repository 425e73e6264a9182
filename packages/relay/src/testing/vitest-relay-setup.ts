/**
 * A Vitest global setup (`test.globalSetup`) for tests that need the real Node relay, such as
 * the browser peer's tests in Chromium: it starts the relay CLI once per run (dev mode, a
 * temporary data directory, CORS open, dev tokens for the test page's origin) and provides its HTTP URL as `relayUrl`. Tests read it
 * with `inject('relayUrl')`; they declare that key on Vitest's `ProvidedContext` themselves,
 * so they need no import of the relay.
 */
import { type RelayProcess, spawnRelayProcess } from '../node/process';

/** Limits high enough for tests that open many clients and download in many pages. */
export const TEST_LIMITS = {
  connectionsPerAddressPerMinute: 1_000_000,
  httpRequestsPerAddressPerMinute: 1_000_000,
  opsPerConnectionPerSecond: 10_000_000,
};

let relay: RelayProcess | undefined;

export async function setup({ provide }: { provide: (key: 'relayUrl', value: string) => void }) {
  // The test page is on another origin (Vitest's server): the root config publishes it so that
  // this page alone may fetch dev tokens; pages and pushes need CORS too.
  const page = process.env.MITTSYNC_TEST_PAGE_ORIGIN;
  relay = await spawnRelayProcess({
    dev: true,
    limits: TEST_LIMITS,
    args: ['--cors', '*', ...(page === undefined ? [] : ['--dev-origin', page])],
  });
  provide('relayUrl', relay.httpUrl);
}

export async function teardown() {
  await relay?.stop();
}
