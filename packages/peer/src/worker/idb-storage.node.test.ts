import 'fake-indexeddb/auto';
import type { Entry } from '@mittsync/core';
import { prng, runReplicaStorageTests } from '@mittsync/core/testing';
import { describe, expect, it } from 'vitest';
import { IdbReplicaStorage } from './idb-storage';

let n = 0;

// A fast extra run of the contract on fake-indexeddb; the real run is in Chromium.
runReplicaStorageTests('IndexedDB (fake-indexeddb)', {
  create: async () => new IdbReplicaStorage({ name: `node-suite-${n++}` }),
  reopen: async (prev) => new IdbReplicaStorage({ name: (prev as IdbReplicaStorage).name }),
});

describe('IdbReplicaStorage pages', () => {
  it('matches a plain map through random batches that split pages', async () => {
    const rand = prng(42);
    const s = new IdbReplicaStorage({ name: `node-model-${n++}`, cacheEntries: 1000 });
    await s.open();
    const model = new Map<string, Entry>();
    for (let round = 0; round < 400; round++) {
      // Mostly small batches (deltas, folds), now and then a bulk one (page merges, splits).
      const size = round % 20 === 0 ? Math.floor(rand() * 3000) + 1 : Math.floor(rand() * 30) + 1;
      const puts: Entry[] = [];
      for (let i = 0; i < size; i++) {
        const key = `k${Math.floor(rand() * 20_000)
          .toString()
          .padStart(5, '0')}`;
        const e: Entry =
          rand() < 0.1
            ? { key, hlc: `h${round}`, seq: round, deleted: true }
            : { key, hlc: `h${round}`, seq: round, value: { round, i } };
        puts.push(e);
        model.set(key, e);
      }
      await s.commit({ bucket: 'b', puts });
    }
    const sorted = [...model.values()].sort((a, b) => (a.key < b.key ? -1 : 1));
    expect(await s.scan('b', { includeDeleted: true })).toEqual(sorted);
    expect(await s.scan('b', {})).toEqual(sorted.filter((e) => !e.deleted));
    expect(await s.scan('b', { prefix: 'k012', includeDeleted: true })).toEqual(
      sorted.filter((e) => e.key.startsWith('k012')),
    );
    expect(await s.scan('b', { start: 'k05', end: 'k07', limit: 300, includeDeleted: true })).toEqual(
      sorted.filter((e) => e.key >= 'k05' && e.key < 'k07').slice(0, 300),
    );
    const probe = ['k00000', 'k19999', 'k10000', 'nope', ...sorted.slice(0, 50).map((e) => e.key)];
    expect(await s.getEntries('b', probe)).toEqual(probe.map((k) => model.get(k)));
    await s.close();
    // The same again from disk, with a cold cache.
    const t = new IdbReplicaStorage({ name: s.name });
    await t.open();
    expect(await t.scan('b', { includeDeleted: true })).toEqual(sorted);
    expect(await t.getEntries('b', probe)).toEqual(probe.map((k) => model.get(k)));
    await t.close();
  }, 60_000);
});
