import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLOSE_CODES, encodeFrame } from '@mittsync/core';
import { encodeHlc } from '@mittsync/core/model';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { signToken } from '../auth';
import { parseMetrics } from '../metrics';
import {
  createNodeSocket,
  eventually,
  liveState,
  openReplica,
  RawClient,
  type RelayUnderTest,
  rawClient,
  relayEntries,
  sleep,
  UpgradeRefused,
} from '../testing';
import { type NodeRelay, startNodeRelay } from './server';

const secret = 'bad-input-secret-bad-input-secret!!';
const dir = mkdtempSync(join(tmpdir(), 'mittsync-bad-'));
let node: NodeRelay;
let relay: RelayUnderTest;

beforeAll(async () => {
  node = await startNodeRelay({
    port: 0,
    data: dir,
    auth: { secret },
    limits: {
      maxFrameBytes: 64 * 1024,
      maxOpsPerFrame: 100,
      maxValueBytes: 8 * 1024,
      connectionsPerAddressPerMinute: 100_000,
      httpRequestsPerAddressPerMinute: 100_000,
    },
  });
  relay = {
    url: node.url,
    httpUrl: node.httpUrl,
    createSocket: createNodeSocket,
    makeToken: (c) => signToken(secret, c),
    close: () => node.close(),
  };
});

afterAll(async () => {
  await node?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A small deterministic PRNG, so a failing run can be replayed. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** Sends `frames` on one socket and waits until each got its error frame; returns the codes. */
async function expectErrors(
  c: RawClient,
  frames: (Uint8Array | string | Record<string, unknown>)[],
): Promise<string[]> {
  const before = c.received.filter((m) => m.type === 'error').length;
  for (const f of frames) {
    if (f instanceof Uint8Array || typeof f === 'string') c.send(f);
    else c.sendRaw(f);
  }
  await eventually(
    `${frames.length} error frames`,
    () => c.received.filter((m) => m.type === 'error').length - before >= frames.length,
    60_000,
  );
  return c.received
    .filter((m) => m.type === 'error')
    .slice(before)
    .map((m) => (m.type === 'error' ? m.code : ''));
}

it('survives 10,000 malformed, oversized, out-of-scope and unauthenticated inputs while a good client syncs', async () => {
  const rand = prng(20240601);
  // The well-behaved pair: one writes every 20 ms, the other measures when it sees each write.
  const bucket = 'good';
  const writer = await openReplica(relay, { sub: 'good-writer' });
  const observer = await openReplica(relay, { sub: 'good-observer' });
  await observer.openBucket(bucket);
  await observer.whenReady(bucket);
  const sentAt = new Map<string, number>();
  const latencies: number[] = [];
  observer.onChange((b, entries) => {
    if (b !== bucket) return;
    for (const e of entries) {
      const t = sentAt.get(e.key);
      if (t !== undefined) latencies.push(performance.now() - t);
    }
  });
  let writing = true;
  let written = 0;
  const loop = (async () => {
    while (writing) {
      const key = `k${written++}`;
      sentAt.set(key, performance.now());
      await writer.put(bucket, key, written);
      await sleep(20);
    }
  })();

  const counts: Record<string, number> = {};
  const tally = (codes: string[]) => {
    for (const c of codes) counts[c] = (counts[c] ?? 0) + 1;
  };
  let sent = 0;

  // 1. Malformed frames after a valid hello: garbage bytes, garbage JSON, wrong shapes.
  const malformed = await Promise.all([0, 1, 2, 3, 4].map(() => rawClient(relay)));
  await Promise.all(
    malformed.map(async (c, i) => {
      const frames: (Uint8Array | string | Record<string, unknown>)[] = [];
      for (let n = 0; n < 500; n++) {
        const kind = (n + i) % 5;
        if (kind === 0)
          frames.push(
            Uint8Array.from({ length: 1 + Math.floor(rand() * 200) }, () => Math.floor(rand() * 256)),
          );
        else if (kind === 1) frames.push(`{"type": ${n}`);
        else if (kind === 2) frames.push({ type: 'push', bucket: 'x', ops: [{ nope: n }] });
        else if (kind === 3) frames.push({ type: ['sub'], bucket: n });
        else frames.push(encodeFrame([n, 'not', { a: 'message' }]));
      }
      sent += frames.length;
      tally(await expectErrors(c, frames));
    }),
  );

  // 2. Oversized: too many ops, keys and values too large, clocks too far ahead, frames too big.
  const big = await Promise.all([0, 1, 2, 3, 4].map(() => rawClient(relay)));
  await Promise.all(
    big.map(async (c, i) => {
      const frames: Record<string, unknown>[] = [];
      for (let n = 0; n < 490; n++) {
        const op = c.op(`k${n}`, n);
        const kind = (n + i) % 3;
        if (kind === 0)
          frames.push({ type: 'push', bucket: 'big', ops: Array.from({ length: 101 }, () => op) });
        else if (kind === 1)
          frames.push({ type: 'push', bucket: 'big', ops: [{ ...op, key: 'k'.repeat(600) }] });
        else frames.push({ type: 'push', bucket: 'big', ops: [{ ...op, value: 'v'.repeat(9000) }] });
      }
      sent += frames.length;
      tally(await expectErrors(c, frames));
    }),
  );
  const drifter = await rawClient(relay, 'drifter');
  for (let n = 0; n < 50; n++) {
    const op = drifter.op(`d${n}`, n);
    drifter.send({
      type: 'push',
      bucket: 'big',
      ops: [{ ...op, hlc: encodeHlc(Date.now() + 86_400_000, n, 'drifter') }],
    });
  }
  sent += 50;
  await eventually(
    '50 drift rejections',
    () => drifter.received.filter((m) => m.type === 'ack').length === 50,
  );
  tally(drifter.received.flatMap((m) => (m.type === 'ack' ? (m.rejected ?? []).map((r) => r.code) : [])));
  for (let n = 0; n < 50; n++) {
    const c = await rawClient(relay);
    c.send(new Uint8Array(64 * 1024 + 1 + n));
    expect((await c.closed).code).toBe(CLOSE_CODES.FRAME_TOO_LARGE);
    tally(['FRAME_TOO_LARGE']);
    sent++;
  }

  // 3. Out of scope: a token for `allowed-*` reads only, poking at everything else.
  const scoped = await Promise.all(
    [0, 1, 2, 3].map((i) => rawClient(relay, `scoped${i}`, { read: ['allowed-*'], write: [] })),
  );
  await Promise.all(
    scoped.map(async (c, i) => {
      const frames: Record<string, unknown>[] = [];
      for (let n = 0; n < 500; n++) {
        const kind = (n + i) % 3;
        if (kind === 0) frames.push({ type: 'sub', bucket: 'good', since: 0, flush: false, subId: n });
        else if (kind === 1) frames.push({ type: 'pageReq', bucket: 'good', reqId: n, since: 0, limit: 10 });
        else frames.push({ type: 'push', bucket: 'allowed-1', ops: [c.op(`k${n}`, n)] });
      }
      sent += frames.length;
      tally(await expectErrors(c, frames));
    }),
  );
  const reader = await signToken(secret, { sub: 'http-scoped', read: ['allowed-*'] });
  const statuses: number[] = [];
  for (let n = 0; n < 500; n++) {
    const res = await fetch(`${relay.httpUrl}/v1/buckets/good/pages?limit=10`, {
      headers: { authorization: `Bearer ${reader}` },
    });
    await res.arrayBuffer();
    statuses.push(res.status);
  }
  sent += 500;

  // 4. Unauthenticated: no token, forged tokens, over HTTP and WebSocket.
  const forged = `${(await signToken(secret, { sub: 'x', read: ['*'] })).slice(0, -6)}AAAAAA`;
  for (let n = 0; n < 2000; n++) {
    const headers: Record<string, string> = n % 2 === 0 ? {} : { authorization: `Bearer ${forged}` };
    const res =
      n % 4 < 2
        ? await fetch(`${relay.httpUrl}/v1/buckets/good/pages`, { headers })
        : await fetch(`${relay.httpUrl}/v1/buckets/good/ops`, { method: 'POST', headers, body: '{}' });
    await res.arrayBuffer();
    statuses.push(res.status);
  }
  sent += 2000;
  for (let n = 0; n < 500; n++) {
    try {
      await RawClient.connect(relay, n % 2 === 0 ? { token: forged } : {});
      statuses.push(101);
    } catch (e) {
      statuses.push(e instanceof UpgradeRefused ? e.status : 0);
    }
  }
  sent += 500;

  writing = false;
  await loop;

  // Every input got its own typed answer.
  expect(sent).toBeGreaterThanOrEqual(10_000);
  expect(counts.BAD_FRAME! + counts.BAD_MESSAGE!).toBe(2500);
  expect(counts.TOO_MANY_OPS).toBeGreaterThan(800);
  expect(counts.KEY_TOO_LARGE).toBeGreaterThan(800);
  expect(counts.VALUE_TOO_LARGE).toBeGreaterThan(800);
  expect(counts.CLOCK_DRIFT).toBe(50);
  expect(counts.FRAME_TOO_LARGE).toBe(50);
  expect(counts.FORBIDDEN).toBe(2000);
  expect(statuses.filter((s) => s === 403).length).toBe(500);
  // No socket without a valid token: every anonymous or forged upgrade is refused with 401.
  expect(statuses.filter((s) => s === 401).length).toBe(2500);
  const metrics = parseMetrics(await (await fetch(`${relay.httpUrl}/metrics`)).text());
  expect(metrics.get('mittsync_rejections_total{code="FORBIDDEN"}')).toBeGreaterThanOrEqual(2500);
  expect(metrics.get('mittsync_rejections_total{code="UNAUTHENTICATED"}')).toBeGreaterThanOrEqual(2500);

  // The relay is healthy, and the good client kept syncing all along with bounded latency.
  expect((await fetch(`${relay.httpUrl}/healthz`)).status).toBe(200);
  const token = await signToken(secret, { sub: 'auditor', read: ['*'] });
  await eventually('the good pair converged', async () => {
    const want = JSON.stringify(liveState(await relayEntries(relay, bucket, token)));
    return (
      JSON.stringify(liveState(await writer.scan(bucket, {}))) === want &&
      JSON.stringify(liveState(await observer.scan(bucket, {}))) === want
    );
  });
  expect((await observer.scan(bucket, {})).length).toBe(written);
  latencies.sort((a, b) => a - b);
  const p99 = latencies[Math.floor(latencies.length * 0.99)] as number;
  expect(latencies.length).toBeGreaterThan(50);
  expect(p99).toBeLessThan(2000);
  for (const c of [...malformed, ...big, ...scoped, drifter]) c.close();
  await Promise.all([writer.close(), observer.close()]);
}, 120_000);
