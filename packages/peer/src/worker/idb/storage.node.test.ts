import 'fake-indexeddb/auto';
import { runReplicaStorageTests } from '@mittsync/core/testing';
import { runIdbLayoutTests } from './layout.cases.test';
import { IdbReplicaStorage } from './storage';

let n = 0;

// A fast extra run of the contract on fake-indexeddb; the real run is in Chromium.
runReplicaStorageTests('IndexedDB (fake-indexeddb)', {
  create: async () => new IdbReplicaStorage({ name: `node-suite-${n++}` }),
  reopen: async (prev) => new IdbReplicaStorage({ name: (prev as IdbReplicaStorage).name }),
});

runIdbLayoutTests('node');
