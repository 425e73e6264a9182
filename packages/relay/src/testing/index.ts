/** Test helpers for relays: the conformance suite, a raw protocol client and harness helpers. */
export { runRelayConformanceTests } from './conformance';
export type { RelaySetup, RelayUnderTest, TokenRequest } from './harness';
export {
  eventually,
  httpGet,
  liveState,
  openReplica,
  rawClient,
  relayEntries,
  sleep,
  uniq,
} from './harness';
export { RawClient, UpgradeRefused } from './raw-client';
