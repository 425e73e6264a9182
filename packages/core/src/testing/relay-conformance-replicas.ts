import { describe, expect, it } from 'vitest';
import { systemEnv } from '../env';
import { encodeHlc } from '../hlc';
import type { Op } from '../model';
import type { PageMsg } from '../protocol';
import { purgedSlot } from '../purged-keys';
import type { ReplicaView } from '../replicas';
import type { RawClient } from './raw-client';
import { eventually, openReplica, type RelayUnderTest, rawClient, relayEntries, uniq } from './relay-harness';

/** A replica as the relay's JSON lists it. */
type ReplicaJson = ReplicaView;

interface BucketJson {
  bucket: string;
  epoch: string;
  head: number;
  entries: number;
  tombstones: number;
  replicas: number;
  horizon: number;
  control: { in: { enabled: boolean }; out: { enabled: boolean } };
  replicaList: ReplicaJson[];
}

async function admin(
  relay: RelayUnderTest,
  method: string,
  path: string,
  body?: unknown,
  token?: string,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const t = token ?? (await relay.makeToken({ sub: 'conformance-admin', admin: true }));
  const res = await fetch(`${relay.httpUrl}/v1/admin${path}`, {
    method,
    headers: {
      authorization: `Bearer ${t}`,
      accept: 'application/json',
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

async function bucketInfo(relay: RelayUnderTest, bucket: string): Promise<BucketJson> {
  const { status, json } = await admin(relay, 'GET', `/buckets/${encodeURIComponent(bucket)}`);
  if (status !== 200) throw new Error(`admin bucket ${bucket}: ${status} ${JSON.stringify(json)}`);
  return json as unknown as BucketJson;
}

/** Waits until the relay handled every frame `c` sent before (a ping's answer comes after them). */
async function roundTrip(c: RawClient, id: number): Promise<void> {
  // Frames without a bucket go to the socket of the last bucket used (the edge's per-bucket one).
  c.send({ type: 'ping', id });
  await c.next('pong', (p) => p.id === id);
}

/** An op of `c`'s replica with an HLC `ageMs` in the past (an offline write pushed late). */
function oldOp(c: RawClient, key: string, ageMs: number): Op {
  const op = c.op(key, 'late');
  return { ...op, hlc: encodeHlc(Date.now() - ageMs, 0, c.replicaId) };
}

async function pageSince(c: RawClient, bucket: string, since: number, reqId: number): Promise<PageMsg> {
  c.send({ type: 'pageReq', bucket, reqId, since, limit: 1000 });
  return c.next('page', (p) => p.reqId === reqId);
}

/**
 * The relay knows where its replicas are: replica records and the admin API, tombstones
 * collected once every live replica acknowledged a checkpoint past them, resets only when a
 * needed tombstone was purged, old writes to purged keys refused, admin control of
 * replication in and out, and bucket resets.
 */
export function replicaSetTests(ctx: { relay: RelayUnderTest }): void {
  describe('replica records and tombstone GC', () => {
    it('lists each replica of a bucket with its policy, acknowledged checkpoint and last seen', async () => {
      const bucket = uniq('rs');
      const a = await openReplica(ctx.relay);
      const r = await openReplica(ctx.relay);
      await r.openBucket(bucket, { policy: 'readOnly' });
      await a.transact(
        bucket,
        Array.from({ length: 5 }, (_, i) => ({ key: `k${i}`, value: i })),
        { ack: 'relay' },
      );
      await r.whenReady(bucket);
      await eventually('both replicas acknowledge seq 5', async () => {
        const info = await bucketInfo(ctx.relay, bucket);
        return info.replicaList.length === 2 && info.replicaList.every((x) => x.acked >= 5);
      });
      const info = await bucketInfo(ctx.relay, bucket);
      expect(info).toMatchObject({ bucket, head: 5, entries: 5, tombstones: 0, replicas: 2 });
      const byId = new Map(info.replicaList.map((x) => [x.replicaId, x]));
      expect(byId.get(a.replicaId)).toMatchObject({ policy: 'replica', connected: true });
      expect(byId.get(r.replicaId)).toMatchObject({ policy: 'readOnly', connected: true });
      expect(Math.abs((byId.get(r.replicaId)?.lastSeen ?? 0) - Date.now())).toBeLessThan(10 * 60_000);
      const one = await admin(
        ctx.relay,
        'GET',
        `/buckets/${encodeURIComponent(bucket)}/replicas/${r.replicaId}`,
      );
      expect(one.status).toBe(200);
      expect(one.json).toMatchObject({ bucket, replicaId: r.replicaId, policy: 'readOnly' });
      // The bucket list has it, with its sizes.
      let found: Record<string, unknown> | undefined;
      let after: string | undefined;
      for (let i = 0; i < 50 && found === undefined; i++) {
        const q = after === undefined ? '' : `&after=${encodeURIComponent(after)}`;
        const list = await admin(ctx.relay, 'GET', `/buckets?limit=200${q}`);
        expect(list.status).toBe(200);
        const buckets = list.json.buckets as Record<string, unknown>[];
        found = buckets.find((b) => b.bucket === bucket);
        if (list.json.next === null) break;
        after = list.json.next as string;
      }
      expect(found).toMatchObject({ bucket, head: 5, entries: 5, replicas: 2 });
      // A reader of the bucket sees the same list (the demo's inspector).
      const reader = await ctx.relay.makeToken({ sub: uniq('reader'), read: [bucket] });
      const listed = await fetch(`${ctx.relay.httpUrl}/v1/buckets/${encodeURIComponent(bucket)}/replicas`, {
        headers: { authorization: `Bearer ${reader}`, accept: 'application/json' },
      });
      expect(listed.status).toBe(200);
      const body = (await listed.json()) as { head: number; replicas: ReplicaJson[] };
      expect(body.head).toBe(5);
      expect(body.replicas.map((x) => x.replicaId).sort()).toEqual([a.replicaId, r.replicaId].sort());
      const outsider = await ctx.relay.makeToken({ sub: uniq('other'), read: ['elsewhere'] });
      const refused = await fetch(`${ctx.relay.httpUrl}/v1/buckets/${encodeURIComponent(bucket)}/replicas`, {
        headers: { authorization: `Bearer ${outsider}`, accept: 'application/json' },
      });
      expect(refused.status).toBe(403);
      await Promise.all([a.close(), r.close()]);
    });

    it('refuses the admin API without an admin-scoped token', async () => {
      const token = await ctx.relay.makeToken({ sub: uniq('u'), read: ['*'], write: ['*'] });
      const res = await admin(ctx.relay, 'GET', `/buckets/${uniq('x')}`, undefined, token);
      expect(res.status).toBe(403);
      expect(res.json).toMatchObject({ code: 'FORBIDDEN' });
    });

    it('holds tombstones for a lagging replica, resumes it without reset, then purges them', async () => {
      const bucket = uniq('gc');
      const w = await rawClient(ctx.relay);
      w.send({ type: 'sub', bucket, since: 0, flush: false, subId: 1 });
      const { epoch } = await w.next('subscribed');
      w.send({ type: 'push', bucket, ops: Array.from({ length: 10 }, (_, i) => w.op(`k${i}`, i)) });
      expect((await w.next('ack')).seq).toBe(10);
      // The lagging replica joins at seq 10, then goes away without acknowledging more.
      const lagId = uniq('lag');
      const lag = await rawClient(ctx.relay, lagId);
      lag.send({ type: 'sub', bucket, since: 0, flush: false, subId: 1 });
      expect((await lag.next('subscribed')).from).toBe(11);
      lag.send({ type: 'ckpt', bucket, seq: 10 });
      await roundTrip(lag, 1);
      lag.close();
      w.send({ type: 'push', bucket, ops: [0, 1, 2, 3, 4].map((i) => w.op(`k${i}`, null, 'del')) });
      expect((await w.next('ack', (a) => a.upTo === 15)).seq).toBe(15);
      w.send({ type: 'ckpt', bucket, seq: 15 });
      await roundTrip(w, 2);
      expect(await bucketInfo(ctx.relay, bucket)).toMatchObject({ tombstones: 5, horizon: 0 });
      // It resumes within retention: no reset, and the deletes come as tombstones.
      const back = await rawClient(ctx.relay, lagId);
      back.send({ type: 'sub', bucket, since: 10, epoch, flush: false, subId: 2 });
      expect(await back.next('subscribed')).toMatchObject({ subId: 2, from: 16 });
      expect(back.received.some((m) => m.type === 'reset')).toBe(false);
      const dirty = await pageSince(back, bucket, 10, 1);
      expect(dirty.entries.filter((e) => e.deleted).length).toBe(5);
      back.send({ type: 'ckpt', bucket, seq: 15 });
      await roundTrip(back, 3);
      expect(await bucketInfo(ctx.relay, bucket)).toMatchObject({ tombstones: 0, horizon: 15, entries: 5 });
      // Now a resume from before the purged tombstones needs one of them: reset.
      const stale = await rawClient(ctx.relay);
      stale.send({ type: 'sub', bucket, since: 10, epoch, flush: false, subId: 7 });
      expect(await stale.next('reset')).toMatchObject({ subId: 7, reason: 'horizon' });
      stale.send({ type: 'pageReq', bucket, reqId: 2, since: 10, limit: 1000 });
      expect(await stale.next('reset', (m) => m.subId === -1)).toMatchObject({ reason: 'horizon' });
      // ...and a resume from the last purged one does not.
      stale.send({ type: 'sub', bucket, since: 15, epoch, flush: false, subId: 8 });
      expect(await stale.next('subscribed', (m) => m.subId === 8)).toMatchObject({ from: 16 });
      for (const c of [w, back, stale]) c.close();
    });

    it('refuses a stale write to a purged key with TOMBSTONE_PURGED and accepts one to a key never deleted', async () => {
      const bucket = uniq('pk');
      const w = await rawClient(ctx.relay);
      w.send({ type: 'sub', bucket, since: 0, flush: false, subId: 1 });
      await w.next('subscribed');
      w.send({ type: 'push', bucket, ops: [w.op('gone', 1), w.op('gone', null, 'del')] });
      await w.next('ack', (a) => a.upTo === 2);
      w.send({ type: 'ckpt', bucket, seq: 2 });
      await roundTrip(w, 1);
      expect(await bucketInfo(ctx.relay, bucket)).toMatchObject({ tombstones: 0, entries: 0 });
      // A writer back from an hour offline pushes writes made before the delete.
      let other = 'never-deleted';
      while (purgedSlot(other) === purgedSlot('gone')) other += '-';
      const o = await rawClient(ctx.relay);
      o.send({ type: 'push', bucket, ops: [oldOp(o, 'gone', 3_600_000), oldOp(o, other, 3_600_000)] });
      const ack = await o.next('ack');
      expect(ack.upTo).toBe(2);
      expect(ack.rejected).toEqual([{ originSeq: 1, code: 'TOMBSTONE_PURGED', message: expect.any(String) }]);
      const token = await ctx.relay.makeToken({ sub: uniq('reader'), read: ['*'] });
      const keys = (await relayEntries(ctx.relay, bucket, token)).map((e) => e.key);
      expect(keys).toEqual([other]);
      // Through a replica: the `relay` promise rejects and the status shows why.
      const clock = systemEnv();
      const late = await openReplica(ctx.relay, { env: { ...clock, now: () => Date.now() - 3_600_000 } });
      await late.openBucket(bucket);
      await late.whenReady(bucket);
      let lateOther = 'late-other';
      while (purgedSlot(lateOther) === purgedSlot('gone')) lateOther += '-';
      await late.put(bucket, lateOther, 1, { ack: 'relay' });
      const refused = await late.put(bucket, 'gone', 'late', { ack: 'relay' }).then(
        () => 'accepted',
        (e: { code?: string }) => e.code,
      );
      expect(refused).toBe('TOMBSTONE_PURGED');
      expect(late.status(bucket)?.lastError?.code).toBe('TOMBSTONE_PURGED');
      await eventually(
        'the refused write is gone from the replica',
        async () => (await late.get(bucket, 'gone')) === undefined,
      );
      for (const c of [w, o]) c.close();
      await late.close();
    });
  });

  describe('admin control of replication', () => {
    it('switching "in" off keeps replicas connected and refuses their pushes with REPLICATION_REFUSED', async () => {
      const bucket = uniq('ctl');
      const httpUser = uniq('h');
      const c = await rawClient(ctx.relay);
      c.send({ type: 'sub', bucket, since: 0, flush: false, subId: 1 });
      await c.next('subscribed');
      const set = await admin(ctx.relay, 'PUT', `/buckets/${encodeURIComponent(bucket)}/control`, {
        in: { deny: [`sub:${c.replicaId}`, `sub:${httpUser}`] },
      });
      expect(set.status).toBe(200);
      const op = c.op('k', 1);
      c.send({ type: 'push', bucket, ops: [op] });
      expect((await c.nextError('REPLICATION_REFUSED')).bucket).toBe(bucket);
      // Still subscribed: another writer's op reaches it.
      const w = await rawClient(ctx.relay);
      w.send({ type: 'push', bucket, ops: [w.op('w', 1)] });
      expect((await w.next('ack')).seq).toBe(1);
      expect((await c.next('deliver')).ops.map((o) => o.key)).toEqual(['w']);
      // Over HTTP too.
      const token = await ctx.relay.makeToken({ sub: httpUser, read: ['*'], write: ['*'] });
      const res = await fetch(`${ctx.relay.httpUrl}/v1/buckets/${encodeURIComponent(bucket)}/ops`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          accept: 'application/json',
        },
        body: JSON.stringify({
          ops: [{ ...op, origin: httpUser, hlc: op.hlc.replace(c.replicaId, httpUser) }],
        }),
      });
      expect(res.status).toBe(403);
      expect(await res.json()).toMatchObject({ code: 'REPLICATION_REFUSED' });
      // Switched back on: the refused op goes through (nothing of it was consumed).
      await admin(ctx.relay, 'PUT', `/buckets/${encodeURIComponent(bucket)}/control`, { in: { deny: [] } });
      c.send({ type: 'push', bucket, ops: [op] });
      expect(await c.next('ack')).toMatchObject({ upTo: 1, seq: 2 });
      for (const x of [c, w]) x.close();
    });

    it('refuses subscriptions and pages of a denied group with REPLICATION_REFUSED', async () => {
      const bucket = uniq('ctl');
      const set = await admin(ctx.relay, 'PUT', `/buckets/${encodeURIComponent(bucket)}/control`, {
        out: { deny: ['group:guests'] },
      });
      expect(set.json).toMatchObject({ control: { out: { enabled: true, deny: ['group:guests'] } } });
      const guest = await rawClient(ctx.relay, uniq('guest'), { groups: ['guests'] });
      guest.send({ type: 'sub', bucket, since: 0, flush: false, subId: 1 });
      expect((await guest.nextError('REPLICATION_REFUSED')).bucket).toBe(bucket);
      const token = await ctx.relay.makeToken({ sub: uniq('guest'), read: ['*'], groups: ['guests'] });
      const page = await fetch(`${ctx.relay.httpUrl}/v1/buckets/${encodeURIComponent(bucket)}/pages`, {
        headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
      });
      expect(page.status).toBe(403);
      const member = await rawClient(ctx.relay, uniq('member'), { groups: ['staff'] });
      member.send({ type: 'sub', bucket, since: 0, flush: false, subId: 1 });
      expect(await member.next('subscribed')).toMatchObject({ subId: 1 });
      const bad = await admin(ctx.relay, 'PUT', `/buckets/${encodeURIComponent(bucket)}/control`, {
        out: { deny: ['everyone'] },
      });
      expect(bad.status).toBe(400);
      for (const x of [guest, member]) x.close();
    });

    it('resets a bucket to a new epoch: live subscribers are told to re-join', async () => {
      const bucket = uniq('rst');
      const c = await rawClient(ctx.relay);
      c.send({ type: 'sub', bucket, since: 0, flush: false, subId: 1 });
      const { epoch } = await c.next('subscribed');
      c.send({ type: 'push', bucket, ops: [c.op('k', 1)] });
      await c.next('ack');
      const res = await admin(ctx.relay, 'POST', `/buckets/${encodeURIComponent(bucket)}/reset`);
      expect(res.status).toBe(200);
      const fresh = res.json.epoch as string;
      expect(fresh).not.toBe(epoch);
      expect(await c.next('reset')).toMatchObject({ subId: -1, reason: 'epoch', epoch: fresh });
      c.send({ type: 'sub', bucket, since: 1, epoch, flush: false, subId: 2 });
      expect(await c.next('reset', (m) => m.subId === 2)).toMatchObject({ reason: 'epoch' });
      expect(await bucketInfo(ctx.relay, bucket)).toMatchObject({ epoch: fresh, entries: 1, replicas: 0 });
      c.close();
    });
  });
}
