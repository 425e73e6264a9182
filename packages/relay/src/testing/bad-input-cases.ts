import { CLOSE_CODES, type ErrorCode, encodeFrame, packOps, type Replica } from '@mittsync/core';
import { encodeHlc } from '@mittsync/core/model';
import {
  eventually,
  liveState,
  openReplica,
  RawClient,
  type RelayUnderTest,
  rawClient,
  relayEntries,
  sleep,
  UpgradeRefused,
} from '@mittsync/core/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseMetrics } from '../metrics';

/**
 * The limits a relay under the bad-input suite must be started with: the cases size their
 * inputs to just past them. Per-address limits are lifted, since the suite opens hundreds of
 * sockets and sends thousands of requests from one address.
 */
export const BAD_INPUT_LIMITS = {
  maxFrameBytes: 64 * 1024,
  maxOpsPerFrame: 100,
  maxValueBytes: 8 * 1024,
  connectionsPerAddressPerMinute: 100_000,
  httpRequestsPerAddressPerMinute: 100_000,
};

/** A relay under the bad-input suite: the conformance suite's view of it, plus its metrics. */
export interface BadInputRelay extends RelayUnderTest {
  /**
   * How many refusals with `code` the relay counted, wherever it counts them. On Node that is
   * its one `/metrics`; on the edge, the Worker's (HTTP and upgrade refusals) plus the
   * objects of `buckets` (frames refused on their sockets).
   */
  rejections(code: ErrorCode, buckets: readonly string[]): Promise<number>;
  /**
   * The runtime closes a keep-alive connection after answering a request whose body it did not
   * read, without saying `Connection: close` (workerd's HTTP server does). `fetch` may already
   * have sent the next request on that connection, which then fails with a socket error
   * before any answer; such a request is sent once more. Elsewhere every request must get its
   * answer on the first try.
   */
  closesAfterUnreadBody?: boolean;
}

/** `mittsync_rejections_total{code}` of one Prometheus text page (0 when absent). */
export async function rejectionsAt(url: string, code: ErrorCode, token?: string): Promise<number> {
  const res = await fetch(url, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`metrics at ${url} answered ${res.status}: ${text}`);
  return parseMetrics(text).get(`mittsync_rejections_total{code="${code}"}`) ?? 0;
}

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

/** Sends `frames` on one client and waits until each got its error frame; returns the codes. */
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
    30_000,
  );
  return c.received
    .filter((m) => m.type === 'error')
    .slice(before)
    .map((m) => (m.type === 'error' ? m.code : ''));
}

/** One HTTP request; once more if its reused connection closed under it (see `closesAfterUnreadBody`). */
async function request(relay: BadInputRelay, url: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (e) {
    const cause = (e as { cause?: { code?: unknown } }).cause;
    if (relay.closesAfterUnreadBody !== true || cause?.code !== 'UND_ERR_SOCKET') throw e;
    return await fetch(url, init);
  }
}

function tally(codes: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const c of codes) counts[c] = (counts[c] ?? 0) + 1;
  return counts;
}

/**
 * The bad-input suite: more than 10,000 malformed, oversized, out-of-scope and unauthenticated
 * inputs, each answered with its own error code, HTTP status or close code, while a good pair
 * of replicas keeps syncing through all of it. After every case a good client still
 * round-trips a write. Runs against any relay `setup` starts with {@link BAD_INPUT_LIMITS}
 * (the Node relay, the edge relay on workerd), so both answer bad input the same way.
 *
 * @example
 * ```ts
 * runBadInputTests('Node relay', async () => {
 *   const node = await startNodeRelay({ port: 0, data, auth: { secret }, limits: BAD_INPUT_LIMITS });
 *   return { ...target, rejections: (code) => rejectionsAt(`${node.httpUrl}/metrics`, code) };
 * });
 * ```
 */
export function runBadInputTests(name: string, setup: () => Promise<BadInputRelay>): void {
  describe(`${name}: bad input`, () => {
    let relay: BadInputRelay;
    const bucket = 'good';
    let writer: Replica;
    let observer: Replica;
    const sentAt = new Map<string, number>();
    const latencies: number[] = [];
    let writing = true;
    let written = 0;
    let loop: Promise<void> = Promise.resolve();
    let sent = 0;
    let roundTrips = 0;
    const clients: RawClient[] = [];
    const keep = <T extends RawClient>(c: T): T => {
      clients.push(c);
      return c;
    };

    beforeAll(async () => {
      relay = await setup();
      // The well-behaved pair: one writes every 20 ms, the other notes when it sees each write.
      writer = await openReplica(relay, { sub: 'good-writer' });
      observer = await openReplica(relay, { sub: 'good-observer' });
      await observer.openBucket(bucket);
      await observer.whenReady(bucket);
      observer.onChange((b, entries) => {
        if (b !== bucket) return;
        for (const e of entries) {
          const t = sentAt.get(e.key);
          if (t !== undefined) latencies.push(performance.now() - t);
        }
      });
      loop = (async () => {
        while (writing) {
          const key = `k${written++}`;
          sentAt.set(key, performance.now());
          await writer.put(bucket, key, written);
          await sleep(20);
        }
      })();
    }, 60_000);

    afterEach(async () => {
      // The relay is still up for others: health, and a fresh client's write reaches a reader.
      expect((await fetch(`${relay.httpUrl}/healthz`)).status).toBe(200);
      const key = `round-trip-${++roundTrips}`;
      const fresh = await openReplica(relay);
      try {
        await fresh.put(bucket, key, roundTrips, { ack: 'relay' });
        await eventually(`${key} reached the observer`, async () => {
          const e = await observer.get(bucket, key);
          return e?.value === roundTrips;
        });
      } finally {
        await fresh.close();
      }
    });

    afterAll(async () => {
      writing = false;
      await loop;
      for (const c of clients) c.close();
      await Promise.all([writer?.close(), observer?.close()]);
      await relay?.close();
    });

    it('answers 2,500 malformed frames after hello with one BAD_FRAME or BAD_MESSAGE each', async () => {
      const rand = prng(20240601);
      const malformed = await Promise.all([0, 1, 2, 3, 4].map(async () => keep(await rawClient(relay))));
      const codes = await Promise.all(
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
          return expectErrors(c, frames);
        }),
      );
      const counts = tally(codes.flat());
      expect((counts.BAD_FRAME ?? 0) + (counts.BAD_MESSAGE ?? 0)).toBe(2500);
    });

    it('answers 2,450 oversized pushes with TOO_MANY_OPS, KEY_TOO_LARGE or VALUE_TOO_LARGE', async () => {
      const big = await Promise.all([0, 1, 2, 3, 4].map(async () => keep(await rawClient(relay))));
      const codes = await Promise.all(
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
          return expectErrors(c, frames);
        }),
      );
      const counts = tally(codes.flat());
      expect(counts.TOO_MANY_OPS).toBeGreaterThan(800);
      expect(counts.KEY_TOO_LARGE).toBeGreaterThan(800);
      expect(counts.VALUE_TOO_LARGE).toBeGreaterThan(800);
      expect(counts.TOO_MANY_OPS! + counts.KEY_TOO_LARGE! + counts.VALUE_TOO_LARGE!).toBe(2450);
    });

    it('answers 500 malformed or oversized packed pushes with a typed error each', async () => {
      const c = keep(await rawClient(relay));
      const rand = prng(20261206);
      const frames: Record<string, unknown>[] = [];
      const expected: Record<string, number> = {};
      for (let n = 0; n < 500; n++) {
        const op = c.op(`k${n}`, { n });
        const kind = n % 5;
        let ops: Uint8Array;
        let code: ErrorCode = 'BAD_FRAME';
        if (kind === 0) {
          const whole = packOps([op, c.op(`j${n}`, n)], false) as Uint8Array;
          ops = whole.slice(0, Math.floor(rand() * whole.length)); // truncated anywhere
        } else if (kind === 1) ops = new Uint8Array([...(packOps([op], false) as Uint8Array), 0x01]);
        else if (kind === 2) {
          const key = `\u00e9${n}`;
          ops = packOps([{ ...op, key }], false) as Uint8Array;
          const len = key.length + 1; // é is two bytes
          const at = ops.findIndex((x, i) => x === len && ops[i + 1] === 0xc3 && ops[i + 2] === 0xa9);
          ops[at + 2] = 0x41; // C3 41: a lenient decoder reads it as another key
          code = 'BAD_MESSAGE';
        } else if (kind === 3) {
          ops = packOps(
            Array.from({ length: 101 }, () => op),
            false,
          ) as Uint8Array;
          code = 'TOO_MANY_OPS';
        } else {
          ops = packOps([{ ...op, key: 'k'.repeat(600) }], false) as Uint8Array;
          code = 'KEY_TOO_LARGE';
        }
        expected[code] = (expected[code] ?? 0) + 1;
        frames.push({ type: 'push', bucket: 'big', ops });
      }
      sent += frames.length;
      expect(tally(await expectErrors(c, frames))).toEqual(expected);
    });

    it('rejects 50 ops stamped a day ahead with CLOCK_DRIFT in their acks', async () => {
      const drifter = keep(await rawClient(relay, 'drifter'));
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
      const codes = drifter.received.flatMap((m) =>
        m.type === 'ack' ? (m.rejected ?? []).map((r) => r.code) : [],
      );
      expect(tally(codes).CLOCK_DRIFT).toBe(50);
    });

    it('closes 50 sockets that send a frame over maxFrameBytes with 4009 (FRAME_TOO_LARGE)', async () => {
      for (let n = 0; n < 50; n++) {
        const c = keep(await rawClient(relay));
        // Half on a socket that already serves a bucket (on the edge, that bucket's object's
        // socket; on Node the same one socket), half before any bucket.
        if (n % 2 === 1) {
          c.send({ type: 'sub', bucket: 'frames', since: 0, flush: false, subId: 1 });
          await c.next('subscribed');
        }
        c.send(new Uint8Array(BAD_INPUT_LIMITS.maxFrameBytes + 1 + n));
        expect((await c.closed).code).toBe(CLOSE_CODES.FRAME_TOO_LARGE);
        expect(c.received.at(-1)).toMatchObject({ type: 'error', code: 'FRAME_TOO_LARGE' });
        sent++;
      }
    });

    it('answers 2,000 frames and 500 page requests out of the token scope with FORBIDDEN and 403', async () => {
      const before = await relay.rejections('FORBIDDEN', ['good', 'allowed-1']);
      const scoped = await Promise.all(
        [0, 1, 2, 3].map(async (i) =>
          keep(await rawClient(relay, `scoped${i}`, { read: ['allowed-*'], write: [] })),
        ),
      );
      const codes = await Promise.all(
        scoped.map(async (c, i) => {
          const frames: Record<string, unknown>[] = [];
          for (let n = 0; n < 500; n++) {
            const kind = (n + i) % 3;
            if (kind === 0) frames.push({ type: 'sub', bucket: 'good', since: 0, flush: false, subId: n });
            else if (kind === 1)
              frames.push({ type: 'pageReq', bucket: 'good', reqId: n, since: 0, limit: 10 });
            else frames.push({ type: 'push', bucket: 'allowed-1', ops: [c.op(`k${n}`, n)] });
          }
          sent += frames.length;
          return expectErrors(c, frames);
        }),
      );
      expect(tally(codes.flat()).FORBIDDEN).toBe(2000);
      // Counted where they were refused; read at once (an idle object may be evicted, its
      // counters with it).
      const frameRefusals = (await relay.rejections('FORBIDDEN', ['good', 'allowed-1'])) - before;
      expect(frameRefusals).toBeGreaterThanOrEqual(2000);
      const beforeHttp = await relay.rejections('FORBIDDEN', []);
      const reader = await relay.makeToken({ sub: 'http-scoped', read: ['allowed-*'] });
      const statuses: number[] = [];
      for (let n = 0; n < 500; n++) {
        const res = await request(relay, `${relay.httpUrl}/v1/buckets/good/pages?limit=10`, {
          headers: { authorization: `Bearer ${reader}` },
        });
        await res.arrayBuffer();
        statuses.push(res.status);
      }
      sent += 500;
      expect(statuses.filter((s) => s === 403).length).toBe(500);
      expect((await relay.rejections('FORBIDDEN', [])) - beforeHttp).toBeGreaterThanOrEqual(500);
    });

    it('refuses 2,500 anonymous or forged requests and upgrades with 401 (no socket without a valid token)', async () => {
      const before = await relay.rejections('UNAUTHENTICATED', []);
      const forged = `${(await relay.makeToken({ sub: 'x', read: ['*'] })).slice(0, -6)}AAAAAA`;
      const statuses: number[] = [];
      for (let n = 0; n < 2000; n++) {
        const headers: Record<string, string> = n % 2 === 0 ? {} : { authorization: `Bearer ${forged}` };
        // Refused before the body is read: workerd then closes the connection (see request()).
        const res =
          n % 4 < 2
            ? await request(relay, `${relay.httpUrl}/v1/buckets/good/pages`, { headers })
            : await request(relay, `${relay.httpUrl}/v1/buckets/good/ops`, {
                method: 'POST',
                headers,
                body: '{}',
              });
        await res.arrayBuffer();
        statuses.push(res.status);
      }
      sent += 2000;
      for (let n = 0; n < 500; n++) {
        try {
          keep(await RawClient.connect(relay, n % 2 === 0 ? { token: forged } : {}));
          statuses.push(101);
        } catch (e) {
          statuses.push(e instanceof UpgradeRefused ? e.status : 0);
        }
      }
      sent += 500;
      expect(statuses.filter((s) => s === 401).length).toBe(2500);
      expect((await relay.rejections('UNAUTHENTICATED', [])) - before).toBeGreaterThanOrEqual(2500);
    });

    it('kept the good pair syncing through every case, with bounded latency', async () => {
      writing = false;
      await loop;
      expect(sent).toBeGreaterThanOrEqual(10_000);
      const token = await relay.makeToken({ sub: 'auditor', read: ['*'] });
      await eventually('the good pair converged', async () => {
        const want = JSON.stringify(liveState(await relayEntries(relay, bucket, token)));
        return (
          JSON.stringify(liveState(await writer.scan(bucket, {}))) === want &&
          JSON.stringify(liveState(await observer.scan(bucket, {}))) === want
        );
      });
      const keys = (await observer.scan(bucket, {})).filter((e) => /^k\d+$/.test(e.key));
      expect(keys.length).toBe(written);
      latencies.sort((a, b) => a - b);
      const p99 = latencies[Math.floor(latencies.length * 0.99)] as number;
      expect(latencies.length).toBeGreaterThan(50);
      expect(p99).toBeLessThan(2000);
    });
  });
}
