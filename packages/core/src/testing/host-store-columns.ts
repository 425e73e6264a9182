import { describe, expect, it } from 'vitest';
import { columnEntries, packColumns } from '../columns';
import { BucketHost, pageEntryBytes } from '../host';
import type { HostStore } from '../host-store';
import { type Entry, keyOrder } from '../model';
import { plainEntry } from '../packed';
import {
  commit,
  fixedEnv,
  frame,
  type HostStoreSetup,
  live,
  pageEntries,
  pageRange,
  shuffled,
  tomb,
  VALUES,
} from './host-store-fixtures';

/** `s.pageColumns` as entries, or undefined when the store declined. */
function columnRead(
  s: HostStore,
  since: number,
  after: string | undefined,
  until: string | undefined,
  limit: number,
  maxValueBytes = 1 << 20,
): Entry[] | undefined {
  const got = s.pageColumns?.(since, after, until, limit, maxValueBytes);
  return got === undefined ? undefined : columnEntries(packColumns(got, got.n)).map(plainEntry);
}

/** Pages read in bulk by column (stores that have `pageColumns`), and pages a host builds from them. */
export function columnTests(setup: HostStoreSetup): void {
  describe('pages by column', () => {
    it('reads the entries a scan reads: tombstones, NUL and multi-byte keys, every bound', async (t) => {
      const s = await setup.create();
      if (s.pageColumns === undefined) t.skip();
      const keys = ['a', 'a\u0000b', 'é', '！', '\uE000', 'k\uFFFFk', 'z', ...VALUES.map((_, i) => `k${i}`)];
      const entries = shuffled(keys).map((k, i) =>
        i % 4 === 1 ? tomb(k, i + 1) : live(k, i + 1, VALUES[i % VALUES.length]),
      );
      commit(s, entries);
      for (const [since, after, until, limit] of [
        [0, undefined, undefined, 100],
        [0, 'k1', 'k5', 3],
        [0, 'a', '！', 100],
        [6, undefined, undefined, 100],
        [0, undefined, undefined, 1],
        [0, 'zz', undefined, 10],
        [999, undefined, undefined, 10],
      ] as const) {
        expect(columnRead(s, since, after, until, limit), `${since} ${after} ${until} ${limit}`).toEqual(
          s.scan(since, after, until, limit),
        );
      }
    });

    it('declines a range holding a key past U+FFFF or a value over the bound, and only such a range', async (t) => {
      const s = await setup.create();
      if (s.pageColumns === undefined) t.skip();
      commit(s, [live('a', 1), live('b\u{1F600}', 2), live('c', 3, 'x'.repeat(500)), live('d', 4)]);
      expect(columnRead(s, 0, undefined, 'b', 10)).toEqual(s.scan(0, undefined, 'b', 10));
      expect(columnRead(s, 0, undefined, 'b\u{1F600}', 10)).toBeUndefined();
      expect(columnRead(s, 0, 'b\u{1F600}', undefined, 10, 100)).toBeUndefined();
      expect(columnRead(s, 0, 'b\u{1F600}', undefined, 10, 600)).toEqual(
        s.scan(0, 'b\u{1F600}', undefined, 10),
      );
      expect(columnRead(s, 0, 'c', undefined, 10, 100)).toEqual(s.scan(0, 'c', undefined, 10));
    });

    it('gives a host the pages it gives by entry: the same entries, each page within its byte budget', async (t) => {
      const s = await setup.create();
      if (s.pageColumns === undefined) t.skip();
      const budget = 2_000;
      const host = new BucketHost({ bucket: 'b', store: s, env: fixedEnv(), maxPageBytes: budget });
      const keys = Array.from({ length: 300 }, (_, i) => `key-${String(i).padStart(4, '0')}`);
      for (let i = 0; i < keys.length; i += 50) host.push('w1', frame('w1', i + 1, keys.slice(i, i + 50)));
      host.push(
        'w2',
        frame(
          'w2',
          1,
          keys.filter((_, i) => i % 7 === 0),
          { del: true, wall: 1000 },
        ),
      );
      const want = s.scan(0, undefined, undefined, 1000);
      for (const cols of [false, true]) {
        const pages = pageRange(host, { limit: 40, cols });
        const byColumn = pages.filter((p) => p.cols !== undefined).length;
        const got: Entry[] = [];
        for (const page of pages) {
          const entries = pageEntries(page);
          expect(entries.length).toBeLessThanOrEqual(40);
          const bytes = entries.map(pageEntryBytes);
          // A page ends at the first entry past the budget.
          expect(bytes.slice(0, -1).reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(budget);
          got.push(...entries.map(plainEntry));
        }
        expect(got, cols ? 'by column' : 'by entry').toEqual(want);
        expect([...got].sort(keyOrder)).toEqual(got);
        // The first page of a bucket goes entry by entry (it learns the entry size); then columns.
        if (cols) expect(byColumn).toBeGreaterThan(3);
      }
    });

    it("serves a join from a host's page cache with the changes since on top, on this store", async () => {
      const s = await setup.create();
      const host = new BucketHost({ bucket: 'b', store: s, env: fixedEnv(), pageCache: { minEntries: 0 } });
      const keys = Array.from({ length: 400 }, (_, i) => `key-${String(i).padStart(4, '0')}`);
      for (let i = 0; i < keys.length; i += 100) host.push('w1', frame('w1', i + 1, keys.slice(i, i + 100)));
      const join = (limit: number, until?: string): Entry[] =>
        [
          ...pageRange(host, { limit, until, cols: true }),
          ...(until === undefined ? [] : pageRange(host, { limit, after: until, cols: true })),
        ].flatMap((p) => pageEntries(p).map(plainEntry));
      expect(join(64)).toEqual(s.scan(0, undefined, undefined, 1000));
      // Updates, deletes and new keys after the first join, then joins with other page sizes.
      host.push(
        'w2',
        frame('w2', 1, ['key-0003', 'key-0150', 'key-0151a', 'key-0399', 'zz'], { wall: 5000 }),
      );
      host.push('w2', frame('w2', 6, ['key-0010', 'key-0200'], { del: true, wall: 6000 }));
      const want = s.scan(0, undefined, undefined, 1000);
      expect(join(50, 'key-0201')).toEqual(want);
      expect(join(1000)).toEqual(want);
    });
  });
}
