/**
 * A Vitest global setup (`test.globalSetup`) for tests that need the real Node relay, such as
 * the browser peer's tests in Chromium: it starts the relay CLI once per run (dev mode, a
 * temporary data directory, CORS open) and provides its HTTP URL as `relayUrl`. Tests read it
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
  relay = await spawnRelayProcess({ dev: true, limits: TEST_LIMITS, args: ['--cors', '*'] });
  provide('relayUrl', relay.httpUrl);
}

export async function teardown() {
  await relay?.stop();
}
