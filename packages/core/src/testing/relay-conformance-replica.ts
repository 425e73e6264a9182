import { describe, expect, it } from 'vitest';
import { createHttpPageFetcher } from '../page-fetcher';
import type { Replica } from '../replica';
import {
  convergedWithRelay,
  eventually,
  openReplica,
  type RelayUnderTest,
  rawClient,
  relayEntries,
  sleep,
  uniq,
} from './relay-harness';

async function settled(relay: RelayUnderTest, bucket: string, replicas: Replica[]): Promise<string[]> {
  return convergedWithRelay(
    relay,
    bucket,
    replicas,
    await relay.makeToken({ sub: uniq('check'), read: ['*'] }),
  );
}

/** Replicas (the core `Replica` over its WebSocket transport) against the relay. */
export function replicaTests(ctx: { relay: RelayUnderTest }): void {
  describe('replicas', () => {
    it('delivers one replica’s write to another and acks at relay level only after commit', async () => {
      const bucket = uniq('b');
      const a = await openReplica(ctx.relay);
      const b = await openReplica(ctx.relay);
      await b.openBucket(bucket);
      await b.whenReady(bucket);
      const seen = new Promise<void>((resolve) =>
        b.onChange((bk, entries) => {
          if (bk === bucket && entries.some((e) => e.key === 'hello')) resolve();
        }),
      );
      await a.put(bucket, 'hello', { text: 'world' }, { ack: 'relay' });
      const token = await ctx.relay.makeToken({ sub: uniq('check'), read: ['*'] });
      expect((await relayEntries(ctx.relay, bucket, token)).map((e) => e.key)).toEqual(['hello']);
      await seen;
      expect((await b.get(bucket, 'hello'))?.value).toEqual({ text: 'world' });
      await Promise.all([a.close(), b.close()]);
    });

    it('settles a relay-level write the relay refuses (no write scope) with FORBIDDEN instead of hanging', async () => {
      const bucket = uniq('ro');
      const reader = await openReplica(ctx.relay, { read: ['*'], write: [] });
      await reader.openBucket(bucket);
      await reader.whenReady(bucket);
      const outcome = await reader.put(bucket, 'k', 1, { ack: 'relay' }).then(
        () => 'acked',
        (e: { code?: string }) => e.code,
      );
      expect(outcome).toBe('FORBIDDEN');
      expect(reader.status(bucket)?.lastError?.code).toBe('FORBIDDEN');
      expect(reader.status(bucket)?.pending).toBe(1); // kept: a token with write scope may push it later
      await reader.close();
    });

    it('joins while writers keep writing: ready includes every write made before the join began', async () => {
      const bucket = uniq('b');
      const writers = await Promise.all([openReplica(ctx.relay), openReplica(ctx.relay)]);
      for (const w of writers) {
        await w.openBucket(bucket);
        await w.whenReady(bucket);
      }
      let running = true;
      const counts = writers.map(() => 0);
      const loops = writers.map(async (w, i) => {
        while (running) {
          await w.transact(
            bucket,
            Array.from({ length: 5 }, (_, j) => ({ key: `w${i}-${counts[i]! + j}`, value: counts[i]! + j })),
          );
          counts[i]! += 5;
          // 500 ops/s per writer, the join benchmark's rate. Unpaced (about 2,500 ops/s each)
          // they outran the edge relay when run locally, where workerd runs the Worker and every
          // object on one thread and the test forks share two cores: the joiner's upgrade then
          // waited behind their pushes past the test's timeout.
          await sleep(10);
        }
      });
      await sleep(300);
      // Everything written locally up to here must be in the joiner's copy when it says ready.
      const before = [...counts];
      const joiner = await openReplica(ctx.relay);
      await joiner.openBucket(bucket);
      const info = await joiner.whenReady(bucket);
      expect(info.missed).toEqual([]);
      expect([...info.covered].sort()).toEqual(writers.map((w) => w.replicaId).sort());
      for (let i = 0; i < writers.length; i++) {
        for (let n = 0; n < (before[i] as number); n++) {
          const e = await joiner.get(bucket, `w${i}-${n}`);
          expect(e?.value, `w${i}-${n}`).toBe(n);
        }
      }
      await sleep(200);
      running = false;
      await Promise.all(loops);
      await settled(ctx.relay, bucket, [...writers, joiner]);
      await Promise.all([...writers, joiner].map((r) => r.close()));
    });

    it('resumes after a disconnect with only the entries changed meanwhile, tombstones included', async () => {
      const bucket = uniq('b');
      const a = await openReplica(ctx.relay);
      const b = await openReplica(ctx.relay);
      await a.transact(
        bucket,
        Array.from({ length: 50 }, (_, i) => ({ key: `k${i}`, value: i })),
        { ack: 'relay' },
      );
      await b.openBucket(bucket);
      await b.whenReady(bucket);
      expect((await b.scan(bucket, {})).length).toBe(50);
      b.disconnect({ reconnect: false });
      await a.transact(
        bucket,
        [
          { key: 'k1', value: 'changed' },
          { key: 'k2', delete: true },
          { key: 'new', value: 1 },
        ],
        {
          ack: 'relay',
        },
      );
      const changed: string[] = [];
      b.onChange((bk, entries, source) => {
        if (bk === bucket && source === 'remote') changed.push(...entries.map((e) => e.key));
      });
      b.connect();
      await eventually('b resumed', async () => (await b.get(bucket, 'new')) !== undefined);
      await settled(ctx.relay, bucket, [a, b]);
      expect(changed.sort()).toEqual(['k1', 'k2', 'new']);
      expect(await b.get(bucket, 'k2')).toBeUndefined();
      await Promise.all([a.close(), b.close()]);
    });

    it('joins through the HTTP page endpoint, several ranges in parallel, gzip-compressed', async () => {
      const bucket = uniq('b');
      const w = await rawClient(ctx.relay);
      // Large enough for the relay to suggest split points (it does from 20,000 entries).
      const total = 21_000;
      for (let done = 0; done < total; done += 2000) {
        const n = Math.min(2000, total - done);
        w.send({
          type: 'push',
          bucket,
          ops: Array.from({ length: n }, (_, i) => w.op(`k${done + i}`, { n: i, pad: 'xxxxxxxx' })),
        });
        await w.next('ack');
      }
      w.send({ type: 'sub', bucket, since: 0, flush: false, subId: 1 });
      expect((await w.next('subscribed')).splits.length).toBeGreaterThan(0);
      w.close();
      const sub = uniq('http');
      const token = await ctx.relay.makeToken({ sub, read: ['*'], write: ['*'] });
      const res = await fetch(`${ctx.relay.httpUrl}/v1/buckets/${bucket}/pages?limit=500`, {
        headers: { authorization: `Bearer ${token}`, 'accept-encoding': 'gzip' },
      });
      expect(res.headers.get('content-encoding')).toBe('gzip');
      expect(res.headers.get('content-type')).toBe('application/x-msgpack');
      const overHttp = createHttpPageFetcher({ httpUrl: ctx.relay.httpUrl, token });
      let pages = 0;
      let inflight = 0;
      let maxInflight = 0;
      const fetchPage: typeof overHttp = async (req) => {
        pages++;
        maxInflight = Math.max(maxInflight, ++inflight);
        try {
          return await overHttp(req);
        } finally {
          inflight--;
        }
      };
      const r = await openReplica(ctx.relay, { sub, fetchPage, pageSize: 2000 });
      await r.openBucket(bucket);
      await r.whenReady(bucket);
      expect(pages).toBeGreaterThanOrEqual(11);
      expect(maxInflight).toBeGreaterThan(1);
      expect((await r.scan(bucket, {})).length).toBe(total);
      await settled(ctx.relay, bucket, [r]);
      await r.close();
    });
  });
}

/** Durability across a relay restart (run when the setup can restart its relay). */
export function restartTests(ctx: { relay: RelayUnderTest }): void {
  describe('restart', () => {
    it('keeps every acked op, the epoch and the reception counters across a restart', async (t) => {
      if (ctx.relay.restart === undefined) t.skip();
      const bucket = uniq('b');
      const sub = uniq('d');
      const w = await rawClient(ctx.relay, sub);
      w.send({ type: 'sub', bucket, since: 0, flush: false, subId: 1 });
      const before = await w.next('subscribed');
      w.send({ type: 'push', bucket, ops: Array.from({ length: 20 }, (_, i) => w.op(`k${i}`, i)) });
      expect((await w.next('ack')).upTo).toBe(20);
      await ctx.relay.restart?.();
      expect((await w.closed).code).toBe(ctx.relay.restartCloseCode ?? 1012);
      const again = await rawClient(ctx.relay, sub);
      again.send({ type: 'sub', bucket, since: 20, epoch: before.epoch, flush: false, subId: 2 });
      const after = await again.next('subscribed');
      expect(after.epoch).toBe(before.epoch);
      expect(after.received).toBe(20);
      expect(after.from).toBe(21);
      again.close();
    });

    it('replicas reconnect after a restart, re-push what was not acked, and converge', async (t) => {
      if (ctx.relay.restart === undefined) t.skip();
      const bucket = uniq('b');
      const a = await openReplica(ctx.relay);
      const b = await openReplica(ctx.relay);
      await b.openBucket(bucket);
      await b.whenReady(bucket);
      await a.put(bucket, 'before', 1, { ack: 'relay' });
      const writes = Array.from({ length: 20 }, (_, i) => a.put(bucket, `during${i}`, i));
      await Promise.all([ctx.relay.restart?.(), ...writes]);
      await a.put(bucket, 'after', 2, { ack: 'relay' });
      const state = await settled(ctx.relay, bucket, [a, b]);
      expect(state.length).toBe(22);
      await Promise.all([a.close(), b.close()]);
    });
  });
}
