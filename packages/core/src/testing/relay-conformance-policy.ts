import { describe, expect, it } from 'vitest';
import { columnEntries } from '../columns';
import type { Entry } from '../model';
import type { PageMsg } from '../protocol';
import type { RawClient } from './raw-client';
import { eventually, openReplica, type RelayUnderTest, rawClient, uniq } from './relay-harness';

/** Every entry of `bucket` with `seq > since`, paging as a replica does. */
async function download(c: RawClient, bucket: string, since: number, firstReqId: number): Promise<Entry[]> {
  const out: Entry[] = [];
  let after: string | undefined;
  for (let reqId = firstReqId; ; reqId++) {
    c.send({ type: 'pageReq', bucket, reqId, since, limit: 1000, ...(after === undefined ? {} : { after }) });
    const page: PageMsg = await c.next('page', (p) => p.reqId === reqId);
    out.push(...(page.cols === undefined ? page.entries : columnEntries(page.cols)));
    if (page.next === null) return out;
    after = page.next;
  }
}

/** Subscription policies: `readOnly` pushes refused by the relay, `copy` refreshed by dirty set. */
export function policyTests(ctx: { relay: RelayUnderTest }): void {
  describe('subscription policies', () => {
    it('refuses a push on a readOnly subscription with READ_ONLY even with a write token', async () => {
      const bucket = uniq('ro');
      const c = await rawClient(ctx.relay); // read and write scopes on every bucket
      c.send({ type: 'sub', bucket, since: 0, flush: false, subId: 1, policy: 'readOnly' });
      await c.next('subscribed');
      const op = c.op('k', 1);
      c.send({ type: 'push', bucket, ops: [op] });
      const err = await c.nextError('READ_ONLY');
      expect(err.bucket).toBe(bucket);
      // Nothing was consumed: the same op goes through once the socket subscribes as a replica.
      c.send({ type: 'sub', bucket, since: 0, flush: false, subId: 2 });
      const subd = await c.next('subscribed', (m) => m.subId === 2);
      expect(subd.from).toBe(1);
      expect(subd.received).toBe(0);
      c.send({ type: 'push', bucket, ops: [op] });
      expect((await c.next('ack', (a) => a.upTo === 1)).seq).toBe(1);
      c.close();
    });

    it('settles a readOnly replica’s writes at once with READ_ONLY and keeps it synchronized', async () => {
      const bucket = uniq('ro');
      const w = await openReplica(ctx.relay);
      const r = await openReplica(ctx.relay);
      await r.openBucket(bucket, { policy: 'readOnly' });
      await r.whenReady(bucket);
      const refused = await r.put(bucket, 'k', 1).then(
        () => 'written',
        (e: { code?: string }) => e.code,
      );
      expect(refused).toBe('READ_ONLY');
      await w.put(bucket, 'k', 'from the writer', { ack: 'relay' });
      await eventually(
        'the readOnly replica receives it',
        async () => (await r.get(bucket, 'k')) !== undefined,
      );
      expect(r.status(bucket)).toMatchObject({ policy: 'readOnly', pending: 0 });
      await Promise.all([w.close(), r.close()]);
    });

    it('refreshes a copy with only the entries changed since its checkpoint', async () => {
      const bucket = uniq('copy');
      const w = await rawClient(ctx.relay);
      w.send({ type: 'push', bucket, ops: Array.from({ length: 40 }, (_, i) => w.op(`k${i}`, i)) });
      await w.next('ack');
      // The copy's join: subscribe with a flush, download everything, then detach.
      const c = await rawClient(ctx.relay);
      c.send({ type: 'sub', bucket, since: 0, flush: true, subId: 1, policy: 'copy' });
      const joined = await c.next('subscribed');
      expect(joined.flushId).toBeDefined();
      await c.next('flushed');
      expect((await download(c, bucket, 0, 1)).length).toBe(40);
      const checkpoint = joined.from - 1;
      c.send({ type: 'unsub', bucket });
      w.send({ type: 'push', bucket, ops: [w.op('k3', 'new'), w.op('k7', null, 'del'), w.op('added', 1)] });
      await w.next('ack', (a) => a.upTo === 43);
      // The refresh: a resume from the checkpoint, with a flush, pages "changed since".
      c.send({
        type: 'sub',
        bucket,
        since: checkpoint,
        epoch: joined.epoch,
        flush: true,
        subId: 2,
        policy: 'copy',
      });
      const resumed = await c.next('subscribed', (m) => m.subId === 2);
      expect(resumed.from).toBe(checkpoint + 4);
      await c.next('flushed', (f) => f.flushId === resumed.flushId);
      const dirty = await download(c, bucket, checkpoint, 100);
      expect(dirty.map((e) => e.key).sort()).toEqual(['added', 'k3', 'k7']);
      expect(dirty.find((e) => e.key === 'k7')?.deleted).toBe(true);
      w.close();
      c.close();
    });

    it('a copy replica detaches after ready, keeps its writes local and refreshes by dirty set', async () => {
      const bucket = uniq('copy');
      const w = await openReplica(ctx.relay);
      await w.transact(
        bucket,
        Array.from({ length: 30 }, (_, i) => ({ key: `k${i}`, value: i })),
        { ack: 'relay' },
      );
      const c = await openReplica(ctx.relay);
      await c.openBucket(bucket, { policy: 'copy' });
      await c.whenReady(bucket);
      await eventually('the copy detaches', async () => c.status(bucket)?.phase === 'detached');
      await c.put(bucket, 'fork', 'local only');
      await w.transact(
        bucket,
        [
          { key: 'k1', value: 'changed' },
          { key: 'k2', delete: true },
        ],
        { ack: 'relay' },
      );
      const changed: string[] = [];
      c.onChange((b, entries, source) => {
        if (b === bucket && source === 'remote') changed.push(...entries.map((e) => e.key));
      });
      await c.refresh(bucket);
      expect(changed.sort()).toEqual(['k1', 'k2']);
      expect((await c.get(bucket, 'k1'))?.value).toBe('changed');
      expect(await c.get(bucket, 'k2')).toBeUndefined();
      expect((await c.get(bucket, 'fork'))?.value).toBe('local only');
      expect(c.status(bucket)).toMatchObject({ policy: 'copy', phase: 'detached', pending: 1 });
      const check = await rawClient(ctx.relay, uniq('check'), { read: ['*'], write: [] });
      expect((await download(check, bucket, 0, 1)).some((e) => e.key === 'fork')).toBe(false);
      check.close();
      await Promise.all([w.close(), c.close()]);
    });
  });
}
