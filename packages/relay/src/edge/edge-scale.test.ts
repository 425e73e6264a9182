import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CLOSE_CODES,
  decodeFrame,
  type Replica,
  type SeqOp,
  type WebSocketFactory,
  type WebSocketLike,
} from '@mittsync/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signToken } from '../auth';
import { type EdgeRelay, startEdgeRelay } from '../node/edge-local';
import { startNodeRelay } from '../node/server';
import {
  createNodeSocket,
  eventually,
  liveState,
  openReplica,
  type RawClient,
  type RelayUnderTest,
  rawClient,
  relayEntries,
  rssMb,
} from '../testing';

// One bucket is one Durable Object: what it holds is the edge relay's ceiling per bucket.
// 500 sockets subscribed to one bucket get every op of its writers in order, a late joiner's
// state flush covers every writer, and the outbound bound holds without `bufferedAmount`
// (backlog = bytes sent minus bytes the client reported with `recv`). Across objects, one
// replica with 200 buckets opens 200 sockets; the test prints what that costs next to the
// Node relay's one socket (figures only: timings are not asserted, see STYLE.md).
const secret = 'edge-scale-secret-edge-scale-secret!';
const SUBSCRIBERS = 500;
const WRITERS = 3;
const OPS_PER_WRITER = 100;
/** Small enough that a few large deliveries pass it, far above what the crowd's ops add up to. */
const MAX_OUTBOUND = 256 * 1024;
const RECV_EVERY = 16 * 1024;
const BUCKETS = 200;
const KEYS_PER_BUCKET = 5;

// Objects on disk in a directory of our own, removed at the end (Miniflare removes its own
// temporary directory in the background, often after this process is gone).
const dir = mkdtempSync(join(tmpdir(), 'mittsync-edge-scale-'));
let edge: EdgeRelay;
let relay: RelayUnderTest;
const clients: RawClient[] = [];

/** The workerd process Miniflare started for this test file (a child of this process). */
function workerdPid(): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const m = /^\d+ \((.*)\) \S+ (\d+)/.exec(stat);
      if (m?.[1] === 'workerd' && Number(m[2]) === process.pid) return Number(entry);
    } catch {
      // The process ended meanwhile.
    }
  }
  return undefined;
}

function relayRss(): string {
  const pid = workerdPid();
  const mb = pid === undefined ? undefined : rssMb(pid);
  return mb === undefined ? 'not visible' : `${mb.toFixed(0)} MB`;
}

/** The ops of every `deliver` a client got for `bucket`, in arrival order. */
function delivered(c: RawClient, bucket: string): SeqOp[] {
  return c.received.flatMap((m) => (m.type === 'deliver' && m.bucket === bucket ? m.ops : []));
}

/** Read-only subscribers of `bucket`, opened `batch` at a time (each: lobby socket, then the bucket's). */
async function subscribers(bucket: string, n: number, batch = 50): Promise<RawClient[]> {
  const out: RawClient[] = [];
  for (let i = 0; i < n; i += batch) {
    const opened = await Promise.all(
      Array.from({ length: Math.min(batch, n - i) }, async (_, j) => {
        const c = await rawClient(relay, `${bucket}-sub${i + j}`, { write: [] });
        clients.push(c);
        c.send({ type: 'sub', bucket, since: 0, flush: false, subId: 1 });
        await c.next('subscribed', () => true, 30_000);
        return c;
      }),
    );
    out.push(...opened);
  }
  return out;
}

/**
 * A socket factory whose sockets never send `recv`: a client that reads everything but never
 * reports it, so on workerd its backlog only grows. Counts the reports it swallowed.
 */
function silentSockets(): { createSocket: WebSocketFactory; swallowed: () => number } {
  let swallowed = 0;
  const createSocket: WebSocketFactory = (url, init) => {
    const ws = createNodeSocket(url, init);
    const send = ws.send.bind(ws);
    (ws as { send: WebSocketLike['send'] }).send = (frame) => {
      if (frame instanceof Uint8Array && (decodeFrame(frame) as { type?: unknown }).type === 'recv') {
        swallowed++;
        return;
      }
      send(frame);
    };
    return ws;
  };
  return { createSocket, swallowed: () => swallowed };
}

beforeAll(async () => {
  edge = await startEdgeRelay({
    persist: dir,
    secret,
    recvEvery: RECV_EVERY,
    // Per-address limits are counted per object: one address opens every socket here.
    limits: {
      connectionsPerAddressPerMinute: 1_000_000,
      httpRequestsPerAddressPerMinute: 1_000_000,
      maxOutboundBytes: MAX_OUTBOUND,
    },
  });
  relay = {
    url: edge.url,
    httpUrl: edge.httpUrl,
    createSocket: createNodeSocket,
    makeToken: (c) => signToken(secret, c),
    close: () => edge.close(),
  };
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await edge?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('edge relay at scale', () => {
  it(`delivers every op of ${WRITERS} writers to ${SUBSCRIBERS} sockets on one bucket in order, and a late joiner's flush covers the writers`, async () => {
    const bucket = 'crowd';
    const rssIdle = relayRss();
    const t0 = performance.now();
    const crowd = await subscribers(bucket, SUBSCRIBERS);
    const connectedMs = performance.now() - t0;
    const rssConnected = relayRss();

    const writers: Replica[] = [];
    for (let w = 0; w < WRITERS; w++) writers.push(await openReplica(relay, { sub: `writer${w}` }));
    const t1 = performance.now();
    await Promise.all(
      writers.map(async (r, w) => {
        for (let i = 0; i < OPS_PER_WRITER; i++) await r.put(bucket, `w${w}-${i}`, { w, i });
      }),
    );
    const total = WRITERS * OPS_PER_WRITER;
    await eventually(
      `all ${SUBSCRIBERS} subscribers received ${total} ops`,
      () => crowd.every((c) => delivered(c, bucket).length >= total),
      45_000,
    );
    const deliveredMs = performance.now() - t1;

    for (const c of crowd) {
      const subscribed = c.received.find((m) => m.type === 'subscribed');
      const ops = delivered(c, bucket);
      // Exactly the writers' ops, at consecutive seqs from the subscription's first one...
      expect(ops.length).toBe(total);
      expect(ops.map((o) => o.seq)).toEqual(
        Array.from(
          { length: total },
          (_, i) => (subscribed?.type === 'subscribed' ? subscribed.from : 0) + i,
        ),
      );
      // ...and each writer's in the order it wrote them.
      for (let w = 0; w < WRITERS; w++) {
        expect(ops.filter((o) => o.origin === `writer${w}`).map((o) => o.key)).toEqual(
          Array.from({ length: OPS_PER_WRITER }, (_, i) => `w${w}-${i}`),
        );
      }
      expect(c.received.some((m) => m.type === 'resync' || m.type === 'error')).toBe(false);
    }

    // Each writer stores one more write locally, then a late joiner asks for a state flush:
    // every connected writer is covered, none missed, and the flush's seq covers those writes
    // whether or not they had reached the relay when the joiner subscribed.
    await Promise.all(writers.map((r, w) => r.put(bucket, `late-w${w}`, w)));
    const joiner = await rawClient(relay, 'late-joiner', { write: [] });
    clients.push(joiner);
    joiner.send({ type: 'sub', bucket, since: 0, flush: true, subId: 1 });
    const subd = await joiner.next('subscribed');
    expect(subd.flushId).toBeDefined();
    const flushed = await joiner.next('flushed', (m) => m.flushId === subd.flushId, 30_000);
    expect([...flushed.covered].sort()).toEqual(writers.map((r) => r.replicaId).sort());
    expect(flushed.missed).toEqual([]);
    joiner.send({ type: 'pageReq', bucket, reqId: 1, since: 0, limit: 1000 });
    const page = await joiner.next('page');
    expect(page.entries.filter((e) => /^w\d+-/.test(e.key)).length).toBe(total);
    const late = page.entries.filter((e) => e.key.startsWith('late-'));
    expect(late.map((e) => e.key).sort()).toEqual(writers.map((_, w) => `late-w${w}`));
    for (const e of late) expect(e.seq).toBeLessThanOrEqual(flushed.seq);

    console.log(
      `[edge-scale] ${SUBSCRIBERS} subscribers connected in ${connectedMs.toFixed(0)} ms ` +
        `(workerd RSS ${rssIdle} idle, ${rssConnected} connected); ${total} ops from ${WRITERS} writers delivered to all in ` +
        `${deliveredMs.toFixed(0)} ms (workerd RSS ${relayRss()})`,
    );
    await Promise.all(writers.map((r) => r.close()));
    for (const c of crowd) c.close();
  }, 60_000);

  it('drops a subscriber that never reports recv with resync SLOW_CONSUMER and closes it with 4010, while the others keep receiving', async () => {
    const bucket = 'slow';
    const honest = await subscribers(bucket, 10);
    const silent = silentSockets();
    const slow = await rawClient({ ...relay, createSocket: silent.createSocket }, 'silent', { write: [] });
    clients.push(slow);
    slow.send({ type: 'sub', bucket, since: 0, flush: false, subId: 1 });
    await slow.next('subscribed');
    const writer = await rawClient(relay, 'big-writer');
    clients.push(writer);

    // 100 values of 8 KB, one op a frame: 800 KB towards each subscriber, past 256 KB.
    const value = 'v'.repeat(8 * 1024);
    for (let i = 0; i < 100; i++) {
      writer.send({ type: 'push', bucket, ops: [writer.op(`big${i}`, value)] });
      await writer.next('ack');
    }
    const resync = await slow.next('resync');
    expect(resync).toMatchObject({ bucket, reason: 'SLOW_CONSUMER' });
    await eventually('the honest subscribers received all 100', () =>
      honest.every((c) => delivered(c, bucket).length === 100),
    );
    // Dropped once its unreported bytes passed the bound, long before the end.
    const slowOps = delivered(slow, bucket).length;
    expect(slowOps).toBeGreaterThan(0);
    expect(slowOps * value.length).toBeLessThanOrEqual(MAX_OUTBOUND + 2 * value.length);
    expect(silent.swallowed()).toBeGreaterThan(0);

    // Still not reading-and-reporting, it asks for pages: past twice the bound it is closed.
    for (let i = 0; i < 5; i++) slow.send({ type: 'pageReq', bucket, reqId: i, since: 0, limit: 1000 });
    expect((await slow.closed).code).toBe(CLOSE_CODES.SLOW_CONSUMER);

    // The others never noticed: no resync, and they keep receiving.
    for (let i = 100; i < 110; i++) {
      writer.send({ type: 'push', bucket, ops: [writer.op(`big${i}`, value)] });
      await writer.next('ack');
    }
    await eventually('the honest subscribers received all 110', () =>
      honest.every((c) => delivered(c, bucket).length === 110),
    );
    for (const c of honest) {
      expect(delivered(c, bucket).map((o) => o.key)).toEqual(
        Array.from({ length: 110 }, (_, i) => `big${i}`),
      );
      expect(c.received.some((m) => m.type === 'resync')).toBe(false);
    }
  }, 60_000);

  it(`converges a second replica on ${BUCKETS} buckets one replica wrote, one socket (and object) per bucket`, async () => {
    const edgeRun = await manyBuckets(relay, 'edge');
    // The same workload on the Node relay, where one socket carries every bucket; its database
    // on disk too, as the objects' are.
    const nodeDir = mkdtempSync(join(tmpdir(), 'mittsync-node-scale-'));
    const node = await startNodeRelay({
      port: 0,
      data: nodeDir,
      auth: { secret },
      limits: { maxBucketsPerSocket: BUCKETS, connectionsPerAddressPerMinute: 1_000_000 },
      log: () => undefined,
    });
    let nodeRun: ManyBuckets;
    try {
      nodeRun = await manyBuckets({ ...relay, url: node.url, httpUrl: node.httpUrl }, 'node');
    } finally {
      await node.close();
      rmSync(nodeDir, { recursive: true, force: true });
    }
    // The edge replica went through the lobby, then opened a socket per bucket; Node's kept one.
    expect(edgeRun.sockets).toBe(BUCKETS + 1);
    expect(nodeRun.sockets).toBe(1);
    const ratio = (e: number, n: number) => (n > 0 ? (e / n).toFixed(1) : 'n/a');
    const row = (what: string, e: number, n: number) =>
      `  ${what.padEnd(52)} edge ${e.toFixed(0).padStart(6)} ms   node ${n.toFixed(0).padStart(6)} ms   x${ratio(e, n)}`;
    console.log(
      [
        `[edge-scale] ${BUCKETS} buckets, one replica (edge: ${BUCKETS} sockets, one object each; node: one socket)`,
        row('connect+ready, new buckets (edge: objects created)', edgeRun.openMs, nodeRun.openMs),
        row(
          `${BUCKETS * KEYS_PER_BUCKET} writes, each bucket's in turn, each acked`,
          edgeRun.writeMs,
          nodeRun.writeMs,
        ),
        row('second replica: connect+ready, joining every bucket', edgeRun.joinMs, nodeRun.joinMs),
        `  workerd RSS ${relayRss()}`,
      ].join('\n'),
    );
  }, 60_000);
});

interface ManyBuckets {
  /** A fresh replica: connect, then every bucket subscribed and caught up (empty). */
  openMs: number;
  /** Writing KEYS_PER_BUCKET keys to each bucket, acked by the relay. */
  writeMs: number;
  /** A second fresh replica: connect, then every bucket joined (with the writes) and ready. */
  joinMs: number;
  /** WebSockets the first replica opened. */
  sockets: number;
}

/** One replica opens BUCKETS buckets and writes to each; a second joins them all and must converge. */
async function manyBuckets(target: RelayUnderTest, label: string): Promise<ManyBuckets> {
  const buckets = Array.from({ length: BUCKETS }, (_, i) => `${label}-many-${i}`);
  let sockets = 0;
  const counted: WebSocketFactory = (url, init) => {
    sockets++;
    return target.createSocket(url, init);
  };
  const t0 = performance.now();
  const a = await openReplica({ ...target, createSocket: counted }, { sub: `${label}-many-a` });
  await Promise.all(buckets.map((b) => a.openBucket(b)));
  await Promise.all(buckets.map((b) => a.whenReady(b)));
  const openMs = performance.now() - t0;
  const t1 = performance.now();
  await Promise.all(
    buckets.map(async (b, i) => {
      for (let k = 0; k < KEYS_PER_BUCKET; k++) await a.put(b, `k${k}`, { b: i, k }, { ack: 'relay' });
    }),
  );
  const writeMs = performance.now() - t1;
  const t2 = performance.now();
  const b2 = await openReplica(target, { sub: `${label}-many-b` });
  await Promise.all(buckets.map((b) => b2.openBucket(b)));
  await Promise.all(buckets.map((b) => b2.whenReady(b)));
  const joinMs = performance.now() - t2;
  const token = await target.makeToken({ sub: `${label}-auditor`, read: ['*'] });
  for (const b of buckets) {
    const want = liveState(await relayEntries(target, b, token));
    expect(want.length).toBe(KEYS_PER_BUCKET);
    await eventually(`${b} converged`, async () => {
      const got = liveState(await b2.scan(b, {}));
      return JSON.stringify(got) === JSON.stringify(want);
    });
    expect(liveState(await a.scan(b, {}))).toEqual(want);
  }
  await Promise.all([a.close(), b2.close()]);
  return { openMs, writeMs, joinMs, sockets };
}
