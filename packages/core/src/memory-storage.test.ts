import { MemoryReplicaStorage } from './memory-storage';
import { runReplicaStorageTests } from './testing';

runReplicaStorageTests('memory', { create: async () => new MemoryReplicaStorage() });
