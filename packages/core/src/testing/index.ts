/** Test helpers shared by every package: acceptance suites and the simulator. */

export { allHostEntries } from '../host';

export { NO_FAULTS, SimRelay, SimTransport } from '../sim/network';
export type { SimResult } from '../sim/run';
export { runSeed } from '../sim/run';
export { prng, Scheduler } from '../sim/scheduler';
export type { HarnessReplica } from './harness';
export { Harness } from './harness';
export type { StorageSetup } from './storage-suite';
export { runReplicaStorageTests } from './storage-suite';
