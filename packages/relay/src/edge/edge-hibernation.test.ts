import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DeliverMsg, Op, Replica } from '@mittsync/core';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { signToken } from '../auth';
import { parseMetrics } from '../metrics';
import { buildEdgeWorker, type EdgeRelay, startEdgeRelay } from '../node/edge-local';
import {
  createNodeSocket,
  eventually,
  httpGet,
  liveState,
  openReplica,
  type RawClient,
  type RelayUnderTest,
  rawClient,
  relayEntries,
  sleep,
  uniq,
} from '../testing';

// workerd evicts a Durable Object 10 s after its last event: a request, a socket message or an
// alarm. With hibernatable sockets the object is destroyed and its sockets stay open; the next
// message builds a new instance, which restores each socket's session from its attachment and
// the bucket from SQL. These tests go quiet for longer than that, prove the eviction by the new
// instance's mittsync_restored_sessions_total, and check that nothing was lost.
//
// Every session arms a hello timeout (an alarm) that its welcome clears, but the storage alarm
// stays set and fires once for nothing: a short hello timeout (and flush timeout) puts those
// alarms right after the connections, so the quiet period starts with the last frame.
const IDLE_MS = Number(process.env.EDGE_IDLE_MS ?? 13_000);
const secret = 'hibernation-secret-hibernation-secret';
const readOnly = { write: [] as string[] };

const dir = mkdtempSync(join(tmpdir(), 'mittsync-edge-hibernation-'));
let edge: EdgeRelay | undefined;
let relay: RelayUnderTest;
const replicas: Replica[] = [];
const clients: RawClient[] = [];

beforeAll(async () => {
  edge = await startEdgeRelay({
    // A bundle of its own: test files running in parallel would rebuild the shared one under it.
    bundle: await buildEdgeWorker(join(dir, 'bundle', 'worker.js')),
    persist: join(dir, 'state'),
    secret,
    limits: { helloTimeoutMs: 1000 },
    flushTimeoutMs: 2000,
  });
  relay = {
    url: edge.url,
    httpUrl: edge.httpUrl,
    createSocket: createNodeSocket,
    makeToken: (claims) => signToken(secret, claims),
    close: async () => undefined,
  };
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await Promise.all(replicas.map((r) => r.close()));
  await edge?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function client(sub: string, scopes?: { write: string[] }): Promise<RawClient> {
  const c = await rawClient(relay, sub, scopes);
  clients.push(c);
  return c;
}

async function replica(opts: Parameters<typeof openReplica>[1]): Promise<Replica> {
  // No pings while idle: a ping is a message, and a message keeps the object awake.
  const r = await openReplica(relay, { pingIntervalMs: 60_000, ...opts });
  replicas.push(r);
  return r;
}

/** Subscribes a raw client to `bucket` from scratch. */
async function subscribe(c: RawClient, bucket: string, flush = false) {
  c.send({ type: 'sub', bucket, since: 0, flush, subId: 1 });
  return c.next('subscribed', (m) => m.bucket === bucket);
}

/** Pushes `ops` and waits for the ack covering them. */
async function push(c: RawClient, bucket: string, ops: Op[]) {
  const upTo = ops[ops.length - 1]?.originSeq ?? 0;
  c.send({ type: 'push', bucket, ops });
  return c.next('ack', (a) => a.bucket === bucket && a.upTo >= upTo);
}

/** The seqs of every op delivered to `c` for `bucket`, in arrival order. */
function deliveredSeqs(c: RawClient, bucket: string): number[] {
  return c.received
    .filter((m): m is DeliverMsg => m.type === 'deliver' && m.bucket === bucket)
    .flatMap((m) => m.ops.map((o) => o.seq));
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

async function auditorToken(bucket: string): Promise<string> {
  return signToken(secret, { sub: uniq('auditor'), read: [bucket] });
}

/** The bucket object's mittsync_restored_sessions_total: sessions its current instance rebuilt. */
async function restoredSessions(bucket: string): Promise<number> {
  const res = await fetch(`${relay.httpUrl}/v1/buckets/${encodeURIComponent(bucket)}/metrics`, {
    headers: { authorization: `Bearer ${await auditorToken(bucket)}` },
  });
  if (res.status !== 200) throw new Error(`metrics: HTTP ${res.status}`);
  return parseMetrics(await res.text()).get('mittsync_restored_sessions_total') ?? Number.NaN;
}

async function headOf(bucket: string): Promise<number> {
  const { body } = await httpGet(relay, `/v1/buckets/${bucket}/pages?limit=1`, await auditorToken(bucket));
  if (body.type !== 'page' || body.head === undefined) throw new Error(`no head: ${JSON.stringify(body)}`);
  return body.head;
}

/** Key to value of the live entries on the relay. */
async function relayValues(bucket: string): Promise<Map<string, unknown>> {
  const entries = await relayEntries(relay, bucket, await auditorToken(bucket));
  return new Map(entries.filter((e) => !e.deleted).map((e) => [e.key, e.value]));
}

describe.concurrent('edge relay: a bucket object evicted mid-session', () => {
  it('wakes with its sessions: the stream resumes in seq order, acks and a state flush work, nothing is lost', async ({
    expect,
  }) => {
    const bucket = uniq('hib');
    const expected = new Map<string, unknown>();
    // A Replica writer and reader (the real client), a raw writer and a raw reader.
    const rw = await replica({ sub: uniq('rw') });
    const rr = await replica({ sub: uniq('rr'), ...readOnly });
    await Promise.all([rw.whenReady(bucket), rr.whenReady(bucket)]);
    const reader = await client(uniq('reader'), readOnly);
    await subscribe(reader, bucket);
    const writer = await client(uniq('writer'));
    await subscribe(writer, bucket);

    /** The raw writer's transmission counter: the last originSeq it issued. */
    let sent = 0;
    const write = async (tag: string, n: number) => {
      const ops = Array.from({ length: n }, (_, i) => {
        expected.set(`${tag}-${i}`, { tag, i });
        return writer.op(`${tag}-${i}`, { tag, i });
      });
      sent = ops[n - 1]?.originSeq ?? sent;
      const ack = await push(writer, bucket, ops);
      expect(ack).toMatchObject({ upTo: ops[n - 1]?.originSeq });
      expect(ack.gap).toBeUndefined();
      return ack;
    };
    for (let f = 0; f < 3; f++) await write(`before${f}`, 4);
    const dead = writer.op('before0-0', null, 'del');
    sent = dead.originSeq;
    await push(writer, bucket, [dead]);
    expected.delete('before0-0');
    await rw.transact(bucket, [{ key: 'rw-before', value: 'r1' }], { ack: 'relay' });
    expected.set('rw-before', 'r1');
    const headBefore = await headOf(bucket);
    await eventually('the reader has every op before the idle', () =>
      deliveredSeqs(reader, bucket).includes(headBefore),
    );
    await eventually('the Replica reader has every op before the idle', async () => {
      const have = await rr.get(bucket, 'rw-before');
      return have !== undefined && !have.deleted;
    });
    expect(await restoredSessions(bucket)).toBe(0);

    await sleep(IDLE_MS);

    // The first message after the quiet period: a push, on a socket the old instance accepted.
    const woke = await write('after0', 4);
    expect(woke.seq).toBe(headBefore + 4);
    // A new instance answered it, with the four open sockets' sessions rebuilt.
    expect(await restoredSessions(bucket)).toBe(4);
    await write('after1', 4);
    await rw.transact(bucket, [{ key: 'rw-after', value: 'r2' }], { ack: 'relay' });
    expected.set('rw-after', 'r2');
    const head = await headOf(bucket);
    expect(head).toBe(headBefore + 9);

    // The raw reader got every seq once, in order, across the eviction.
    await eventually('the reader has every op', () => deliveredSeqs(reader, bucket).includes(head));
    expect(deliveredSeqs(reader, bucket)).toEqual(range(1, head));

    // A joiner's state flush reaches both writers through their restored sessions.
    const joiner = await client(uniq('joiner'), readOnly);
    const joined = await subscribe(joiner, bucket, true);
    expect(joined.flushId).toBeDefined();
    const marker = await writer.next('marker', (m) => m.flushId === joined.flushId);
    writer.send({ type: 'markerReply', bucket, flushId: marker.flushId, sent });
    const flushed = await joiner.next('flushed', (m) => m.flushId === joined.flushId);
    expect([...flushed.covered].sort()).toEqual([writer.replicaId, rw.replicaId].sort());
    expect(flushed.missed).toEqual([]);
    expect(flushed.seq).toBe(head);

    // Sessions accepted after the wake live beside the restored ones: one more write reaches
    // every subscriber, old and new.
    await write('final', 2);
    const end = head + 2;
    await eventually('the reader and the joiner have the last ops', () =>
      [reader, joiner].every((c) => deliveredSeqs(c, bucket).includes(end)),
    );
    expect(deliveredSeqs(reader, bucket)).toEqual(range(1, end));
    expect(deliveredSeqs(joiner, bucket)).toEqual([end - 1, end]);

    // The relay holds exactly what was written, and both Replicas equal it.
    expect(await relayValues(bucket)).toEqual(expected);
    const want = liveState(await relayEntries(relay, bucket, await auditorToken(bucket)));
    for (const r of [rw, rr]) {
      await eventually(`${r.replicaId} equals the relay`, async () => {
        return JSON.stringify(liveState(await r.scan(bucket, {}))) === JSON.stringify(want);
      });
    }
  });

  it('resumes a writer that reconnects after the eviction from the received counter in SQL', async ({
    expect,
  }) => {
    const bucket = uniq('hib-leaver');
    const watcher = await client(uniq('watcher'), readOnly);
    await subscribe(watcher, bucket);
    const sub = uniq('leaver');
    const leaver = await client(sub);
    const first = Array.from({ length: 5 }, (_, i) => leaver.op(`k${i}`, i));
    expect(await push(leaver, bucket, first)).toMatchObject({ upTo: 5, seq: 5 });
    leaver.close();
    await leaver.closed;
    await eventually('the watcher has the first writes', () => deliveredSeqs(watcher, bucket).includes(5));

    await sleep(IDLE_MS);

    const again = await client(sub);
    const joined = await subscribe(again, bucket);
    expect(joined.received).toBe(5);
    // A new instance: the watcher's session was rebuilt from its socket.
    expect(await restoredSessions(bucket)).toBe(1);
    again.resumeAt(joined.received);
    const next = [again.op('k5', 5), again.op('k6', 6)];
    expect(await push(again, bucket, next)).toMatchObject({ upTo: 7, seq: 7 });
    // An op the relay already has is recognised as such: acked, not applied again.
    again.send({ type: 'push', bucket, ops: [first[4] as Op] });
    const dup = await again.next('ack', (a) => a.bucket === bucket);
    expect(dup).toMatchObject({ upTo: 7, seq: 7 });
    expect(dup.gap).toBeUndefined();

    await eventually('the watcher has every op', () => deliveredSeqs(watcher, bucket).includes(7));
    expect(deliveredSeqs(watcher, bucket)).toEqual(range(1, 7));
    expect(await relayValues(bucket)).toEqual(new Map(range(0, 6).map((i) => [`k${i}`, i])));
  });
});
