import { describe } from 'vitest';
import { columnTests } from './host-store-columns';
import { contentTests } from './host-store-contents';
import { durabilityTests } from './host-store-durability';
import type { HostStoreSetup } from './host-store-fixtures';
import { replicaStoreTests } from './host-store-replicas';

/**
 * The acceptance suite every {@link HostStore} runs (memory; SQLite on a file through
 * better-sqlite3; Durable Object SQL): meta, entries and their seqs, scans by key range and by
 * seq for pages, splits, tombstone purges, reception counters, transactions (rollback, nesting)
 * and, where the store persists, a reopen; last, a {@link BucketHost} running on the store.
 *
 * @example
 * ```ts
 * runHostStoreTests('memory', { create: () => new MemoryHostStore() });
 * ```
 */
export function runHostStoreTests(name: string, setup: HostStoreSetup): void {
  describe(`HostStore contract: ${name}`, () => {
    contentTests(setup);
    columnTests(setup);
    durabilityTests(setup);
    replicaStoreTests(setup);
  });
}
