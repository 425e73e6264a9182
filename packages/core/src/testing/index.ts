/** Test helpers shared by every package: acceptance suites and the simulator. */
export { runReplicaStorageTests } from './storage-suite';
export type { StorageSetup } from './storage-suite';
export { runSeed } from '../sim/run';
export type { SimResult } from '../sim/run';
export { Scheduler, prng } from '../sim/scheduler';
export { Harness } from './harness';
export type { HarnessReplica } from './harness';
export { SimRelay, SimTransport, NO_FAULTS } from '../sim/network';
