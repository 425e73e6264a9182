/**
 * Vitest global setup of the `peer-browser` project: starts the real Node relay (CLI, dev
 * mode, a temporary data directory) once for the run and provides its URL to the browser
 * tests (`inject('relayUrl')`).
 */
import { type RelayProcess, spawnRelayProcess } from '@mittsync/relay/node';

declare module 'vitest' {
  export interface ProvidedContext {
    relayUrl: string;
  }
}

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
