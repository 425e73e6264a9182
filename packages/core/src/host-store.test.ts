import { MemoryHostStore } from './host-store';
import { runHostStoreTests } from './testing';

runHostStoreTests('memory', { create: () => new MemoryHostStore() });
