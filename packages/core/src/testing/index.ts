/** Test helpers shared by every package: acceptance suites and the simulator. */

export { allHostEntries } from '../host';

export { NO_FAULTS, SimRelay, SimTransport } from '../sim/network';
export type { SimResult } from '../sim/run';
export { runSeed } from '../sim/run';
export { prng, Scheduler } from '../sim/scheduler';
export { CONFORMANCE_SCHEMAS } from './conformance-schemas';
export type { HarnessReplica } from './harness';
export { Harness } from './harness';
export type { HostStoreSetup } from './host-store-fixtures';
export { runHostStoreTests } from './host-store-suite';
export type { SocketTarget } from './raw-client';
export { RawClient, UpgradeRefused } from './raw-client';
export { runRelayConformanceTests } from './relay-conformance';
export { runRelaySchemaTests } from './relay-conformance-schema';
export type { RelayFuzzOptions } from './relay-fuzz';
export { runRelayFuzzTests } from './relay-fuzz';
export type { AckedWriters, RelaySetup, RelayUnderTest, TokenRequest } from './relay-harness';
export {
  convergedWithRelay,
  eventually,
  httpGet,
  liveState,
  openReplica,
  rawClient,
  relayEntries,
  sleep,
  startAckedWriters,
  uniq,
} from './relay-harness';
export type { StorageSetup } from './storage-suite';
export { runReplicaStorageTests } from './storage-suite';
export type { Tiny } from './tiny-schema';
export { tinyArray, tinyAsync, tinyBoolean, tinyNumber, tinyObject, tinyString } from './tiny-schema';
