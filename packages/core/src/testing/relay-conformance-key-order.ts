import { describe, expect, it } from 'vitest';
import { columnEntries, type EntryColumns } from '../columns';
import { createHttpPageFetcher } from '../page-fetcher';
import type { RawClient } from './raw-client';
import { openReplica, type RelayUnderTest, rawClient, uniq } from './relay-harness';

/**
 * Keys whose order by UTF-16 code units (JavaScript's `<`, core's `keyOrder`) differs from
 * their order by UTF-8 bytes or by code points: U+E000..U+FFFF (fullwidth '！' U+FF01, common
 * in CJK text) sort after a surrogate pair (an emoji) in UTF-16 and before it in UTF-8.
 */
const KEYS = [
  'a',
  'b',
  'z',
  '~',
  'k0',
  'k9',
  'é',
  '日本',
  '！',
  '😀',
  '\uFFFF',
  '\uE000',
  'a！',
  'a😀',
  'a\uFFFF',
  'a\uE000',
  'k😀x',
  'k！x',
  'k\uE000',
  'kz',
  '😀😀',
  '！！',
  '\u{10FFFF}',
  '\uFFFD',
];

/** The protocol's order: UTF-16 code units (the default sort of JavaScript strings). */
const SORTED = [...KEYS].sort();

/** A deterministic shuffle, so the relay never receives keys in order by accident. */
function shuffled(xs: readonly string[]): string[] {
  const out = [...xs];
  let s = 11;
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j] as string, out[i] as string];
  }
  return out;
}

const valueFor = (key: string) => ({ key, n: KEYS.indexOf(key) });

async function filledBucket(relay: RelayUnderTest): Promise<string> {
  const bucket = uniq('order');
  const w = await rawClient(relay);
  w.send({ type: 'push', bucket, ops: shuffled(KEYS).map((k) => w.op(k, valueFor(k))) });
  expect((await w.next('ack')).upTo).toBe(KEYS.length);
  w.close();
  return bucket;
}

/** Keys of every page of a range, following the `next` cursors; columns decoded as the replica does. */
async function pagedKeys(
  c: RawClient,
  bucket: string,
  opts: { limit: number; cols: boolean; after?: string; until?: string },
): Promise<string[]> {
  const keys: string[] = [];
  let after = opts.after;
  for (let reqId = 1; reqId < 1000; reqId++) {
    c.send({
      type: 'pageReq',
      bucket,
      reqId,
      since: 0,
      limit: opts.limit,
      ...(opts.cols ? { cols: true } : {}),
      ...(after === undefined ? {} : { after }),
      ...(opts.until === undefined ? {} : { until: opts.until }),
    });
    // A column page whose keys are not ascending fails to decode: it never arrives.
    const page = await c.next('page', (p) => p.reqId === reqId, 5000);
    const entries = page.cols === undefined ? page.entries : columnEntries(page.cols as EntryColumns);
    keys.push(...entries.map((e) => e.key));
    if (page.next === null) return keys;
    after = page.next;
  }
  throw new Error('paging did not end');
}

/** Rejects with `what` when `p` has not settled after `ms`. */
function within<T>(ms: number, p: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** Key order: every page, range and column page in UTF-16 code unit order, on every runtime. */
export function keyOrderTests(ctx: { relay: RelayUnderTest }): void {
  describe('key order', () => {
    it('pages keys in UTF-16 code unit order across page boundaries, as entries and as columns', async () => {
      const bucket = await filledBucket(ctx.relay);
      const c = await rawClient(ctx.relay);
      for (const cols of [false, true]) {
        for (const limit of [1, 2, 3, 7, 100]) {
          expect(await pagedKeys(c, bucket, { limit, cols }), `cols ${cols}, limit ${limit}`).toEqual(SORTED);
        }
      }
      c.close();
    });

    it('bounds key ranges (`after` exclusive, `until` inclusive) by UTF-16 code units', async () => {
      const bucket = await filledBucket(ctx.relay);
      const c = await rawClient(ctx.relay);
      const ranges: [string | undefined, string | undefined][] = [
        ['😀', '\uE000'],
        [undefined, '😀'],
        ['😀', undefined],
        ['\uE000', undefined],
        [undefined, '！'],
        ['a', 'a\uFFFF'],
        ['a😀', 'k😀x'],
        ['k！x', '\uFFFD'],
        ['~', '😀😀'],
        // Bounds that are no stored key.
        ['a\uD83D\uDE01', 'k\uFFFE'],
      ];
      for (const [after, until] of ranges) {
        const want = SORTED.filter(
          (k) => (after === undefined || k > after) && (until === undefined || k <= until),
        );
        for (const cols of [false, true]) {
          const got = await pagedKeys(c, bucket, {
            limit: 2,
            cols,
            ...(after === undefined ? {} : { after }),
            ...(until === undefined ? {} : { until }),
          });
          expect(got, `(${after}, ${until}], cols ${cols}`).toEqual(want);
        }
      }
      c.close();
    });

    it('lets a replica join such a bucket in pages of 2 and 3 keys: columns on the socket, entries over HTTP', async () => {
      const bucket = await filledBucket(ctx.relay);
      const overSocket = await openReplica(ctx.relay, { pageSize: 2 });
      const sub = uniq('http');
      const token = await ctx.relay.makeToken({ sub, read: ['*'], write: ['*'] });
      const overHttp = await openReplica(ctx.relay, {
        sub,
        pageSize: 3,
        fetchPage: createHttpPageFetcher({ httpUrl: ctx.relay.httpUrl, token }),
      });
      for (const [how, r] of [
        ['columns', overSocket],
        ['entries', overHttp],
      ] as const) {
        await r.openBucket(bucket);
        await within(10_000, r.whenReady(bucket), `the join with ${how}`);
        const got = (await r.scan(bucket, {})).map((e) => [e.key, e.value]);
        expect(got, how).toEqual(SORTED.map((k) => [k, valueFor(k)]));
      }
      await Promise.all([overSocket.close(), overHttp.close()]);
    });
  });
}
