import { describe, expect, it } from 'vitest';
import { checksumOf } from '../checksum';
import { columnEntries } from '../columns';
import type { Entry } from '../model';
import type { PageMsg } from '../protocol';
import type { Replica } from '../replica';
import type { ReplicationSpec } from '../spec';
import { specCovers } from '../spec';
import type { RawClient } from './raw-client';
import {
  eventually,
  httpGet,
  liveState,
  openReplica,
  type RelayUnderTest,
  rawClient,
  relayEntries,
  uniq,
} from './relay-harness';

/** Waits until `r` is ready on `bucket` and holds exactly the relay's entries within `spec`. */
async function convergedWithin(
  relay: RelayUnderTest,
  bucket: string,
  r: Replica,
  spec: ReplicationSpec,
): Promise<string[]> {
  const reader = await relay.makeToken({ sub: uniq('reader'), read: ['*'] });
  let why = '';
  let want: string[] = [];
  await eventually('the replica holds the relay’s entries within its spec', async () => {
    const all = await relayEntries(relay, bucket, reader);
    want = liveState(all.filter((e) => specCovers(spec, e.key)));
    const s = r.status(bucket);
    if (s?.phase !== 'ready' || s.pending > 0) {
      why = JSON.stringify(s);
      return false;
    }
    const have = liveState(await r.scan(bucket, {}));
    why = `have ${have.length} want ${want.length}`;
    return JSON.stringify(have) === JSON.stringify(want);
  }).catch((e: Error) => {
    throw new Error(`${e.message}: ${why}`);
  });
  return want;
}

/** Every entry of `bucket` with `seq > since` this socket may read, paging as a replica does. */
async function download(c: RawClient, bucket: string, since: number, firstReqId: number): Promise<Entry[]> {
  const out: Entry[] = [];
  let after: string | undefined;
  for (let reqId = firstReqId; ; reqId++) {
    // Small pages: the cursor must carry across the gaps between a spec's spans.
    c.send({ type: 'pageReq', bucket, reqId, since, limit: 3, ...(after === undefined ? {} : { after }) });
    const page: PageMsg = await c.next('page', (p) => p.reqId === reqId);
    out.push(...(page.cols === undefined ? page.entries : columnEntries(page.cols)));
    if (page.next === null) return out;
    after = page.next;
  }
}

const keysOf = (entries: readonly Entry[]): string[] => entries.map((e) => e.key);

/** Seeds `bucket` with `keys` (value `{ n, secret }`) through a full-access writer. */
async function seed(relay: RelayUnderTest, bucket: string, keys: readonly string[]): Promise<RawClient> {
  const w = await rawClient(relay);
  w.send({ type: 'push', bucket, ops: keys.map((k, n) => w.op(k, { n, secret: `s${n}` })) });
  await w.next('ack', (a) => a.upTo === keys.length);
  return w;
}

const KEYS = ['a/1', 'a/2', 'a0', 'b/1', 'b/2', 'c', 'd/1', 'd/2', 'e'];

/** Replication specs and prefix-scoped tokens, enforced by the relay on every path. */
export function specTests(ctx: { relay: RelayUnderTest }): void {
  describe('replication specs', () => {
    it('serves pages of the spec’s prefixes and ranges only, bounds as documented', async () => {
      const bucket = uniq('spec');
      const w = await seed(ctx.relay, bucket, KEYS);
      const c = await rawClient(ctx.relay);
      // Prefix a/ (not a0), and the range [c, d/2): c and d/1, not d/2.
      const spec: ReplicationSpec = { prefixes: ['a/'], ranges: [{ gte: 'c', lt: 'd/2' }] };
      c.send({ type: 'sub', bucket, since: 0, flush: false, subId: 1, spec });
      const subd = await c.next('subscribed');
      expect(subd.spec).toEqual(spec);
      const got = await download(c, bucket, 0, 1);
      expect(keysOf(got)).toEqual(['a/1', 'a/2', 'c', 'd/1']);
      // The checksum is over the spec's entries only.
      expect(subd.sum).toEqual(checksumOf(got));
      w.close();
      c.close();
    });

    it('projects values to the spec’s fields on pages and deliveries', async () => {
      const bucket = uniq('spec');
      const w = await seed(ctx.relay, bucket, KEYS);
      const c = await rawClient(ctx.relay);
      c.send({
        type: 'sub',
        bucket,
        since: 0,
        flush: false,
        subId: 1,
        spec: { prefixes: ['b/'], fields: ['n'] },
      });
      await c.next('subscribed');
      const got = await download(c, bucket, 0, 1);
      expect(got.map((e) => e.value)).toEqual([{ n: 3 }, { n: 4 }]);
      w.send({ type: 'push', bucket, ops: [w.op('b/1', { n: 30, secret: 'hidden' })] });
      const d = await c.next('deliver');
      expect(d.ops.map((o) => o.value)).toEqual([{ n: 30 }]);
      w.close();
      c.close();
    });

    it('delivers only matching ops, with the seqs covered and the spec’s checksum', async () => {
      const bucket = uniq('spec');
      const w = await seed(ctx.relay, bucket, KEYS);
      const c = await rawClient(ctx.relay);
      c.send({ type: 'sub', bucket, since: 0, flush: false, subId: 1, spec: { prefixes: ['a/'] } });
      const subd = await c.next('subscribed');
      const mine = await download(c, bucket, 0, 1);
      w.send({ type: 'push', bucket, ops: [w.op('x', 1), w.op('a/3', 2), w.op('y', 3)] });
      const d = await c.next('deliver');
      expect(d.ops.map((o) => o.key)).toEqual(['a/3']);
      expect(d.span).toEqual([subd.from, subd.from + 2]);
      const now = [...mine, { key: 'a/3', hlc: d.ops[0]?.hlc ?? '', seq: subd.from + 1 }];
      expect(d.sum).toEqual(checksumOf(now));
      // A frame with nothing for the spec still says which seqs it covered.
      w.send({ type: 'push', bucket, ops: [w.op('z', 4)] });
      const empty = await c.next('deliver');
      expect(empty.ops).toEqual([]);
      expect(empty.span).toEqual([subd.from + 3, subd.from + 3]);
      w.close();
      c.close();
    });

    it('refuses pushes outside the spec per op with OUTSIDE_SPEC', async () => {
      const bucket = uniq('spec');
      const c = await rawClient(ctx.relay);
      c.send({ type: 'sub', bucket, since: 0, flush: false, subId: 1, spec: { prefixes: ['mine/'] } });
      await c.next('subscribed');
      c.send({ type: 'push', bucket, ops: [c.op('mine/1', 1), c.op('other/1', 2), c.op('mine/2', 3)] });
      const ack = await c.next('ack');
      expect(ack.upTo).toBe(3);
      expect(ack.rejected?.map((r) => [r.originSeq, r.code])).toEqual([[2, 'OUTSIDE_SPEC']]);
      const reader = await ctx.relay.makeToken({ sub: uniq('reader'), read: ['*'] });
      expect(keysOf(await relayEntries(ctx.relay, bucket, reader))).toEqual(['mine/1', 'mine/2']);
      c.close();
    });

    it('merges a projected write into the stored value and refuses a projected delete', async () => {
      const bucket = uniq('spec');
      const w = await rawClient(ctx.relay);
      w.send({ type: 'push', bucket, ops: [w.op('k', { a: 1, b: 2, hidden: 'keep' })] });
      await w.next('ack');
      w.send({ type: 'sub', bucket, since: 0, flush: false, subId: 1 });
      await w.next('subscribed');
      const p = await rawClient(ctx.relay);
      p.send({ type: 'sub', bucket, since: 0, flush: false, subId: 1, spec: { fields: ['a', 'b'] } });
      await p.next('subscribed');
      // {a: 9} through fields [a, b]: a changes, b is removed, hidden stays.
      p.send({
        type: 'push',
        bucket,
        ops: [p.op('k', { a: 9 }), p.op('k', null, 'del'), p.op('j', { hidden: 1 })],
      });
      const ack = await p.next('ack');
      expect(ack.rejected?.map((r) => [r.originSeq, r.code])).toEqual([
        [2, 'OUTSIDE_SPEC'],
        [3, 'OUTSIDE_SPEC'],
      ]);
      const reader = await ctx.relay.makeToken({ sub: uniq('reader'), read: ['*'] });
      const entries = await relayEntries(ctx.relay, bucket, reader);
      expect(entries.map((e) => [e.key, e.value])).toEqual([['k', { hidden: 'keep', a: 9 }]]);
      // A full subscriber receives the merged value.
      const d = await w.next('deliver', (m) => m.ops.some((o) => o.key === 'k'));
      expect(d.ops[0]?.value).toEqual({ hidden: 'keep', a: 9 });
      w.close();
      p.close();
    });

    it('resumes a spec with only its entries changed since the checkpoint', async () => {
      const bucket = uniq('spec');
      const w = await seed(ctx.relay, bucket, KEYS);
      const c = await rawClient(ctx.relay);
      const spec: ReplicationSpec = { prefixes: ['d/'] };
      c.send({ type: 'sub', bucket, since: 0, flush: false, subId: 1, spec });
      const joined = await c.next('subscribed');
      c.send({ type: 'unsub', bucket });
      w.send({
        type: 'push',
        bucket,
        ops: [w.op('d/1', 'new'), w.op('a/1', 'new'), w.op('d/2', null, 'del')],
      });
      await w.next('ack', (a) => a.upTo === KEYS.length + 3);
      c.send({
        type: 'sub',
        bucket,
        since: joined.from - 1,
        epoch: joined.epoch,
        flush: false,
        subId: 2,
        spec,
      });
      await c.next('subscribed', (m) => m.subId === 2);
      const dirty = await download(c, bucket, joined.from - 1, 10);
      expect(keysOf(dirty)).toEqual(['d/1', 'd/2']);
      expect(dirty[1]?.deleted).toBe(true);
      w.close();
      c.close();
    });

    it('refuses a malformed spec with BAD_MESSAGE', async () => {
      const c = await rawClient(ctx.relay);
      const bucket = uniq('spec');
      c.send({
        type: 'sub',
        bucket,
        since: 0,
        flush: false,
        subId: 1,
        spec: { ranges: [{ gte: 'b', lt: 'a' }] },
      });
      expect((await c.nextError('BAD_MESSAGE')).message).toMatch(/gte < lt/);
      c.send({ type: 'sub', bucket, since: 0, flush: false, subId: 2, spec: { prefixes: [''] } });
      await c.nextError('BAD_MESSAGE');
      c.close();
    });
  });

  describe('prefix-scoped tokens', () => {
    const scoped = (bucket: string, prefix: string) => ({ prefixes: { [bucket]: [prefix] } });

    it('gives a sub without a spec the token’s prefixes, and refuses a spec outside them', async () => {
      const bucket = uniq('rows');
      const w = await seed(ctx.relay, bucket, KEYS);
      const c = await rawClient(ctx.relay, uniq('u'), scoped(bucket, 'b/'));
      c.send({ type: 'sub', bucket, since: 0, flush: false, subId: 1 });
      const subd = await c.next('subscribed');
      expect(subd.spec).toEqual({ prefixes: ['b/'] });
      expect(keysOf(await download(c, bucket, 0, 1))).toEqual(['b/1', 'b/2']);
      // Inside the scope is fine; reaching outside is forbidden.
      c.send({ type: 'sub', bucket, since: 0, flush: false, subId: 2, spec: { prefixes: ['b/1'] } });
      expect((await c.next('subscribed', (m) => m.subId === 2)).spec).toEqual({ prefixes: ['b/1'] });
      c.send({ type: 'sub', bucket, since: 0, flush: false, subId: 3, spec: { prefixes: ['a/'] } });
      expect((await c.nextError('FORBIDDEN')).bucket).toBe(bucket);
      w.close();
      c.close();
    });

    it('refuses pushes to keys outside the token’s prefixes, on the socket and over HTTP', async () => {
      const bucket = uniq('rows');
      const sub = uniq('u');
      const c = await rawClient(ctx.relay, sub, scoped(bucket, 'user-42/'));
      // No subscription at all: the token alone limits the keys.
      c.send({ type: 'push', bucket, ops: [c.op('user-42/a', 1), c.op('user-7/a', 2)] });
      const ack = await c.next('ack');
      expect(ack.rejected?.map((r) => [r.originSeq, r.code])).toEqual([[2, 'FORBIDDEN']]);
      const token = await ctx.relay.makeToken({
        sub,
        read: ['*'],
        write: ['*'],
        ...scoped(bucket, 'user-42/'),
      });
      const res = await fetch(`${ctx.relay.httpUrl}/v1/buckets/${encodeURIComponent(bucket)}/ops`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          accept: 'application/json',
        },
        body: JSON.stringify({ ops: [c.op('user-7/b', 3), c.op('user-42/b', 4)] }),
      });
      const httpAck = (await res.json()) as { rejected?: { originSeq: number; code: string }[] };
      expect(httpAck.rejected?.map((r) => [r.originSeq, r.code])).toEqual([[3, 'FORBIDDEN']]);
      const reader = await ctx.relay.makeToken({ sub: uniq('reader'), read: ['*'] });
      expect(keysOf(await relayEntries(ctx.relay, bucket, reader))).toEqual(['user-42/a', 'user-42/b']);
      c.close();
    });

    it('limits HTTP pages to the token’s prefixes, and to a spec asked for inside them', async () => {
      const bucket = uniq('rows');
      const w = await seed(ctx.relay, bucket, KEYS);
      const token = await ctx.relay.makeToken({ sub: uniq('u'), read: ['*'], ...scoped(bucket, 'd/') });
      expect(keysOf(await relayEntries(ctx.relay, bucket, token))).toEqual(['d/1', 'd/2']);
      const path = `/v1/buckets/${encodeURIComponent(bucket)}/pages`;
      const narrow = await httpGet(
        ctx.relay,
        `${path}?spec=${encodeURIComponent('{"prefixes":["d/2"]}')}`,
        token,
      );
      expect(keysOf((narrow.body as PageMsg).entries)).toEqual(['d/2']);
      const outside = await httpGet(
        ctx.relay,
        `${path}?spec=${encodeURIComponent('{"prefixes":["a/"]}')}`,
        token,
      );
      expect(outside.status).toBe(403);
      w.close();
    });
  });

  describe('replicas with a spec', () => {
    it('joins a spec while a writer writes, refuses writes outside it and converges', async () => {
      const bucket = uniq('spec');
      const w = await openReplica(ctx.relay);
      await w.transact(
        bucket,
        Array.from({ length: 60 }, (_, i) => ({ key: `${['a', 'b', 'c'][i % 3]}/${i}`, value: i })),
        { ack: 'relay' },
      );
      let n = 0;
      let writing = true;
      const writer = (async () => {
        while (writing) await w.put(bucket, `${['a', 'b', 'c'][n % 3]}/w${n++}`, n, { ack: 'relay' });
      })();
      const spec: ReplicationSpec = { prefixes: ['b/'] };
      const r = await openReplica(ctx.relay);
      await r.openBucket(bucket, { spec });
      await r.whenReady(bucket);
      expect(r.status(bucket)?.spec).toEqual(spec);
      const refused = await r.put(bucket, 'a/x', 1).then(
        () => 'written',
        (e: { code?: string }) => e.code,
      );
      expect(refused).toBe('OUTSIDE_SPEC');
      await r.put(bucket, 'b/mine', 'ok', { ack: 'relay' });
      writing = false;
      await writer;
      const have = await convergedWithin(ctx.relay, bucket, r, spec);
      expect(have.length).toBeGreaterThan(20);
      expect(have.every((x) => x.startsWith('b/'))).toBe(true);
      await Promise.all([w.close(), r.close()]);
    });

    it('widens a live spec downloading only the new keys, and narrows dropping the old', async () => {
      const bucket = uniq('spec');
      const w = await openReplica(ctx.relay);
      await w.transact(
        bucket,
        Array.from({ length: 30 }, (_, i) => ({ key: `${['a', 'b', 'c'][i % 3]}/${i}`, value: i })),
        { ack: 'relay' },
      );
      const r = await openReplica(ctx.relay);
      await r.openBucket(bucket, { spec: { prefixes: ['a/'] } });
      await r.whenReady(bucket);
      const downloaded: string[] = [];
      r.onChange((b, entries, source) => {
        if (b === bucket && source === 'remote') downloaded.push(...entries.map((e) => e.key));
      });
      await w.put(bucket, 'a/live', 1, { ack: 'relay' });
      await r.setSpec(bucket, { prefixes: ['a/', 'b/'] });
      await r.whenReady(bucket);
      await convergedWithin(ctx.relay, bucket, r, { prefixes: ['a/', 'b/'] });
      // The b/ keys and the a/ key written since the checkpoint: nothing of a/ again.
      expect(new Set(downloaded.filter((k) => k.startsWith('a/')))).toEqual(new Set(['a/live']));
      expect(downloaded.filter((k) => k.startsWith('b/')).length).toBe(10);
      expect(r.status(bucket)?.spec).toEqual({ prefixes: ['a/', 'b/'] });
      downloaded.length = 0;
      await r.setSpec(bucket, { prefixes: ['b/'] });
      await r.whenReady(bucket);
      expect((await r.scan(bucket, { prefix: 'a/' })).length).toBe(0);
      await convergedWithin(ctx.relay, bucket, r, { prefixes: ['b/'] });
      expect(downloaded).toEqual([]);
      await w.put(bucket, 'b/after', 2, { ack: 'relay' });
      await w.put(bucket, 'a/after', 2, { ack: 'relay' });
      await convergedWithin(ctx.relay, bucket, r, { prefixes: ['b/'] });
      await Promise.all([w.close(), r.close()]);
    });

    it('a projected replica sees its fields, and its writes keep the fields it cannot see', async () => {
      const bucket = uniq('spec');
      const w = await openReplica(ctx.relay);
      await w.put(bucket, 'k1', { a: 1, b: 2, secret: 'x' }, { ack: 'relay' });
      const p = await openReplica(ctx.relay);
      await p.openBucket(bucket, { spec: { fields: ['a', 'b'] } });
      await p.whenReady(bucket);
      expect((await p.get(bucket, 'k1'))?.value).toEqual({ a: 1, b: 2 });
      await p.put(bucket, 'k1', { a: 5 }, { ack: 'relay' });
      await eventually(
        'the full replica receives the merged value',
        async () =>
          JSON.stringify((await w.get(bucket, 'k1'))?.value) === JSON.stringify({ secret: 'x', a: 5 }),
      );
      const refused = await p.del(bucket, 'k1').then(
        () => 'deleted',
        (e: { code?: string }) => e.code,
      );
      expect(refused).toBe('OUTSIDE_SPEC');
      await w.put(bucket, 'k2', { b: 7, secret: 'y' }, { ack: 'relay' });
      await eventually(
        'the projected replica receives the projection of a live write',
        async () => JSON.stringify((await p.get(bucket, 'k2'))?.value) === JSON.stringify({ b: 7 }),
      );
      expect((await p.get(bucket, 'k1'))?.value).toEqual({ a: 5 });
      await Promise.all([w.close(), p.close()]);
    });

    it('refuses a spec change that would strand pending writes with POLICY_CONFLICT', async () => {
      const bucket = uniq('spec');
      const r = await openReplica(ctx.relay);
      await r.openBucket(bucket, { spec: { prefixes: ['a/', 'b/'] } });
      await r.whenReady(bucket);
      await r.put(bucket, 'b/0', 0, { ack: 'relay' });
      await eventually('the checkpoint passes b/0', () => (r.status(bucket)?.checkpoint ?? 0) > 0);
      r.disconnect({ reconnect: false });
      await r.put(bucket, 'a/pending', 1);
      const refused = await r.setSpec(bucket, { prefixes: ['b/'] }).then(
        () => 'changed',
        (e: { code?: string }) => e.code,
      );
      expect(refused).toBe('POLICY_CONFLICT');
      expect(r.status(bucket)?.spec).toEqual({ prefixes: ['a/', 'b/'] });
      r.connect();
      await r.put(bucket, 'b/1', 1, { ack: 'relay' });
      await r.whenReady(bucket);
      // Narrowing a ready bucket drops the keys no longer covered at once.
      await r.setSpec(bucket, { prefixes: ['b/'] });
      expect(await r.get(bucket, 'a/pending')).toBeUndefined();
      expect((await r.get(bucket, 'b/0'))?.value).toBe(0);
      await convergedWithin(ctx.relay, bucket, r, { prefixes: ['b/'] });
      await r.close();
    });

    it('a replica under a prefix-scoped token sees and writes only its rows', async () => {
      const bucket = uniq('rows');
      const alice = await openReplica(ctx.relay, { prefixes: { [bucket]: ['alice/'] } });
      const bob = await openReplica(ctx.relay, { prefixes: { [bucket]: ['bob/'] } });
      await alice.put(bucket, 'alice/1', 'a', { ack: 'relay' });
      await bob.put(bucket, 'bob/1', 'b', { ack: 'relay' });
      await alice.whenReady(bucket);
      await bob.whenReady(bucket);
      expect(alice.status(bucket)?.spec).toEqual({ prefixes: ['alice/'] });
      const refused = await alice.put(bucket, 'bob/2', 'x').then(
        () => 'written',
        (e: { code?: string }) => e.code,
      );
      expect(refused).toBe('OUTSIDE_SPEC');
      expect(await convergedWithin(ctx.relay, bucket, alice, { prefixes: ['alice/'] })).toHaveLength(1);
      expect(await convergedWithin(ctx.relay, bucket, bob, { prefixes: ['bob/'] })).toHaveLength(1);
      await Promise.all([alice.close(), bob.close()]);
    });
  });
}
