import { spawnSync } from 'node:child_process';
import { decodeFrame, MemoryReplicaStorage, Replica } from '@mittsync/core';
import { signToken } from '@mittsync/relay';
import { spawnRelayProcess, WebSocketTransport } from '@mittsync/relay/node';
import { fillBucket, nodeSocketTarget, RawClient, rssMb, startPageAttack } from '@mittsync/relay/testing';
import { type Metric, median, percentile } from '../metric';

/**
 * Relay benchmarks. Each starts the real relay CLI as a child process on a fresh data
 * directory (SQLite file, WAL, synchronous = FULL: every ack is durable) and drives it over
 * loopback WebSockets from this process, so the relay and the clients each get a core.
 */

const secret = 'bench-secret-bench-secret-bench-secret';

interface RunningRelay {
  url: string;
  httpUrl: string;
  stop(): Promise<void>;
}

async function startRelay(): Promise<RunningRelay> {
  const relay = await spawnRelayProcess({
    secret,
    limits: { connectionsPerAddressPerMinute: 1_000_000, opsPerConnectionPerSecond: 10_000_000 },
    ...(process.env.RELAY_PROFILE === undefined
      ? {}
      : { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${process.env.RELAY_PROFILE}`] }),
  });
  return {
    url: relay.url,
    httpUrl: relay.httpUrl,
    stop: async () => {
      await relay.stop();
      // Let the disk finish writing back this run's data, so the next benchmark's fsyncs
      // don't queue behind it (it would otherwise inflate the latency percentiles).
      spawnSync('sync');
      await sleep(1000);
    },
  };
}

const token = (sub: string) => signToken(secret, { sub, read: ['*'], write: ['*'] });

/** The secret the relay benchmarks sign tokens with (the edge ones start their relay with it). */
export const BENCH_SECRET = secret;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Durable ingest: 4 writers push 500-op frames, 4 frames in flight each; acked ops per second. */
/**
 * {@link ingestAt} against a fresh relay child process; the full run takes the median of three
 * (one 6 s run on this machine's disk measured anywhere from 76k to 129k ops/s).
 */
async function ingest(quick: boolean): Promise<number> {
  const runs: number[] = [];
  for (let i = 0; i < (quick ? 1 : 3); i++) {
    const relay = await startRelay();
    try {
      runs.push(await ingestAt(relay.url, quick));
    } finally {
      await relay.stop();
    }
  }
  return median(runs);
}

/** {@link ingest} against the relay at `url` (bucket `ingest`). */
export async function ingestAt(url: string, quick: boolean): Promise<number> {
  const writers = await Promise.all(
    [0, 1, 2, 3].map(
      // Packed ops, as a current client sends them once welcomed (see core's op-pack.ts).
      async (i) =>
        (await RawClient.open(nodeSocketTarget(url), await token(`w${i}`), `w${i}`, { packOps: true }))
          .client,
    ),
  );
  const frameOps = 500;
  const window = 4;
  const seconds = quick ? 2 : 6;
  let acked = 0;
  let measuring = false;
  let stop = false;
  const run = async (c: RawClient, i: number) => {
    let n = 0;
    const sendFrame = () => {
      const ops = Array.from({ length: frameOps }, () => c.op(`w${i}-${n++}`, { n, text: 'an ingest op' }));
      c.send({ type: 'push', bucket: 'ingest', ops });
    };
    for (let k = 0; k < window; k++) sendFrame();
    while (!stop) {
      await c.next('ack', () => true, 30_000);
      if (measuring) acked += frameOps;
      sendFrame();
    }
  };
  const loops = writers.map(run);
  await sleep(500); // warm-up: JIT, SQLite pages, WAL
  measuring = true;
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const elapsed = (performance.now() - t0) / 1000;
  const result = acked / elapsed;
  measuring = false;
  stop = true;
  await Promise.race([Promise.all(loops), sleep(5000)]);
  for (const c of writers) c.close();
  return Math.round(result);
}

let observeRun: Promise<{ p50: number; p99: number }> | undefined;

/**
 * A writer and an observer replica on bucket `observe` of the relay at `url`: the writer puts
 * 200 times a second (after a second of warm-up), and each write's time until the observer sees
 * it is one sample. `during` runs once both are ready, just before the writes start. A write
 * never observed within 5 s of the last counts as the worst case, not as a missing sample.
 */
export async function writeObserveLoop(
  url: string,
  quick: boolean,
  during?: () => Promise<void>,
): Promise<{ p50: number; p99: number }> {
  const open = (sub: string) =>
    Replica.open({
      storage: new MemoryReplicaStorage(),
      transport: new WebSocketTransport({ url, getToken: () => token(sub) }),
      replicaId: sub,
    });
  const [a, b] = await Promise.all([open('writer'), open('observer')]);
  try {
    const bucket = 'observe';
    for (const r of [a, b]) {
      await r.openBucket(bucket);
      await r.whenReady(bucket);
    }
    const sentAt = new Map<string, number>();
    const latencies: number[] = [];
    let counting = false;
    b.onChange((bk, entries, source) => {
      if (bk !== bucket || source !== 'remote' || !counting) return;
      const now = performance.now();
      for (const e of entries) {
        const t = sentAt.get(e.key);
        if (t !== undefined) latencies.push(now - t);
      }
    });
    await during?.();
    const rate = 200;
    const total = rate * (quick ? 3 : 10);
    const warmup = rate;
    const start = performance.now();
    for (let i = 0; i < warmup + total; i++) {
      const due = start + (i * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      if (i === warmup) counting = true;
      const key = `k${i}`;
      sentAt.set(key, performance.now());
      await a.put(bucket, key, { i, at: Date.now() });
    }
    const deadline = performance.now() + 5000;
    while (latencies.length < total && performance.now() < deadline) await sleep(10);
    latencies.sort((x, y) => x - y);
    while (latencies.length < total) latencies.push(Number.POSITIVE_INFINITY);
    return { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) };
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
}

/** One replica writes 200 times a second; another replica observes each write through the relay. */
function writeObserve(quick: boolean): Promise<{ p50: number; p99: number }> {
  observeRun ??= (async () => {
    const relay = await startRelay();
    try {
      return await writeObserveLoop(relay.url, quick);
    } finally {
      await relay.stop();
    }
  })();
  return observeRun;
}

interface PageAbuseResult {
  baselineMb: number;
  peakMb: number;
  afterMb: number;
  p99: number;
}

let pageAbuseRun: Promise<PageAbuseResult> | undefined;

/**
 * The page attack seen in the wild: 20 clients with a read token request `limit=10000` pages of
 * a bucket of 10,000 values of 3.6 kB (36 MB unbounded) over raw TCP, a new request each every
 * 250 ms, half with gzip, and never read them; meanwhile a writer/observer pair on another
 * bucket measures write-to-observe at 200 writes/s. RSS of the relay process from /proc.
 */
function pageAbuse(quick: boolean): Promise<PageAbuseResult> {
  pageAbuseRun ??= (async () => {
    const relay = await spawnRelayProcess({
      secret,
      // Loopback gives every attacker one address: lift the per-address caps so only the page
      // limits stand between the attackers and the relay's memory.
      limits: { connectionsPerAddressPerMinute: 1_000_000, httpRequestsPerAddressPerMinute: 1_000_000 },
    });
    const pid = relay.child.pid as number;
    try {
      await fillBucket({
        httpUrl: relay.httpUrl,
        bucket: 'big',
        token: await token('filler'),
        sub: 'filler',
        count: 10_000,
        valueBytes: 3_600,
      });
      let baselineMb = Number.NaN;
      let peakMb = Number.NaN;
      let sampler: ReturnType<typeof setInterval> | undefined;
      let attack: { stop(): void } | undefined;
      const attackToken = await signToken(secret, { sub: 'attacker', read: ['big'] });
      let p99: number;
      try {
        ({ p99 } = await writeObserveLoop(relay.url, quick, async () => {
          await sleep(1000);
          baselineMb = rssMb(pid) ?? Number.NaN;
          peakMb = baselineMb;
          sampler = setInterval(() => {
            peakMb = Math.max(peakMb, rssMb(pid) ?? 0);
          }, 20);
          attack = startPageAttack({
            httpUrl: relay.httpUrl,
            bucket: 'big',
            token: attackToken,
            attackers: 20,
            everyMs: 250,
            gzip: true,
          });
        }));
      } finally {
        attack?.stop();
        clearInterval(sampler);
      }
      // Attackers gone: give the relay's allocator and GC a few seconds to hand memory back.
      await sleep(5000);
      const afterMb = rssMb(pid) ?? Number.NaN;
      return { baselineMb, peakMb, afterMb, p99 };
    } finally {
      await relay.stop();
      spawnSync('sync');
    }
  })();
  return pageAbuseRun;
}

/** The part of a `ws` socket the fan-out benchmark reads frames from. */
interface NodeSocket {
  binaryType: string;
  removeAllListeners(event: 'message'): void;
  on(event: 'message', listener: (data: Buffer) => void): void;
}

/** One writer, 1,000 subscribed sockets: op deliveries (one op to one socket) per second. */
async function fanout(quick: boolean): Promise<number> {
  const relay = await startRelay();
  const sockets = 1000;
  try {
    const t = await token('sub');
    const subs: RawClient[] = [];
    for (let i = 0; i < sockets; i += 50) {
      const batch = await Promise.all(
        Array.from(
          { length: Math.min(50, sockets - i) },
          async () => (await RawClient.open(nodeSocketTarget(relay.url), t, 'sub')).client,
        ),
      );
      subs.push(...batch);
    }
    let delivered = 0;
    let measuring = false;
    let checked = 0;
    subs.forEach((c, i) => {
      c.send({ type: 'sub', bucket: 'fanout', since: 0, flush: false, subId: 1 });
      // Count ops as frames arrive, without keeping them: straight off the `ws` socket
      // (nodeSocketTarget opens them with it), as Buffers, bypassing the client's decoding.
      const ws = c.socket as unknown as NodeSocket;
      ws.binaryType = 'nodebuffer';
      ws.removeAllListeners('message');
      ws.on('message', (data: Buffer) => {
        const n = countOps(data);
        if (i === 0 && checked < 100) {
          // Keep the shortcut honest: socket 0 decodes its first frames for real.
          const msg = decodeFrame(data) as { type: string; ops?: unknown[] };
          if (msg.type === 'deliver' && msg.ops?.length !== n)
            throw new Error(`countOps ${n} != ${msg.ops?.length}`);
          checked++;
        }
        if (measuring) delivered += n;
      });
    });
    await sleep(500);
    const w = (await RawClient.open(nodeSocketTarget(relay.url), await token('writer'), 'writer')).client;
    const frameOps = 20;
    const window = 2;
    let stop = false;
    let n = 0;
    const send = () =>
      w.send({
        type: 'push',
        bucket: 'fanout',
        ops: Array.from({ length: frameOps }, () => w.op(`k${n++ % 5000}`, n)),
      });
    for (let k = 0; k < window; k++) send();
    const loop = (async () => {
      while (!stop) {
        await w.next('ack', () => true, 30_000);
        send();
      }
    })();
    await sleep(1000);
    measuring = true;
    const t0 = performance.now();
    await sleep((quick ? 3 : 8) * 1000);
    const result = delivered / ((performance.now() - t0) / 1000);
    if (checked === 0) throw new Error('no deliveries reached the subscribers');
    measuring = false;
    stop = true;
    await Promise.race([loop, sleep(5000)]);
    w.close();
    for (const c of subs) c.terminate();
    return Math.round(result);
  } finally {
    await relay.stop();
  }
}

/**
 * Ops in one `deliver` frame, read from the frame header instead of decoding it whole: the
 * bench process hosts all 1,000 receivers on one core, and decoding every copy would measure
 * this process, not the relay. The frame is `{ type, bucket, ops: [...], sum }` as msgpack.
 */
function countOps(frame: Buffer): number {
  const i = frame.indexOf('ops');
  if (i < 0) return 0;
  const tag = frame[i + 3] as number;
  if (tag >= 0x90 && tag <= 0x9f) return tag - 0x90;
  if (tag === 0xdc) return frame.readUInt16BE(i + 4);
  if (tag === 0xdd) return frame.readUInt32BE(i + 4);
  return 0;
}

export const relayMetrics: Metric[] = [
  {
    name: 'relay_ingest_ops_s',
    unit: 'ops/s',
    description:
      'Ops acknowledged per second by a relay child process (SQLite file, WAL, synchronous=FULL, group commit) from 4 loopback writers pushing 500-op frames (packed ops, as current clients send them) with 4 frames in flight each, after 0.5 s warm-up; 6 s (--quick: 2 s); median of 3 runs, each on a fresh relay (--quick: 1).',
    target: { value: 50_000, better: 'higher' },
    repetitions: { full: 3, quick: 1, of: 'runs' },
    run: ({ quick }) => ingest(quick),
  },
  {
    name: 'write_observe_p50_ms',
    unit: 'ms',
    description:
      "Median time from one Replica's put() to another Replica's onChange for it, through a relay child process over loopback WebSockets, at 200 writes/s for 10 s (--quick: 3 s) after 1 s warm-up.",
    target: { value: 3, better: 'lower' },
    repetitions: { full: 2000, quick: 600, of: 'samples' },
    run: async ({ quick }) => (await writeObserve(quick)).p50,
  },
  {
    name: 'write_observe_p99_ms',
    unit: 'ms',
    description: 'The 99th percentile of the same run as write_observe_p50_ms.',
    target: { value: 8, better: 'lower' },
    repetitions: { full: 2000, quick: 600, of: 'samples' },
    run: async ({ quick }) => (await writeObserve(quick)).p99,
  },
  {
    name: 'page_abuse_rss_peak_mb',
    unit: 'MB',
    description:
      'Peak RSS of a relay child process while 20 raw-TCP clients each request a limit=10000 page of a 36 MB bucket (10,000 values of 3.6 kB) every 250 ms (half gzip) and never read, and a writer/observer pair syncs another bucket at 200 writes/s; 10 s (--quick: 3 s) after 1 s warm-up.',
    target: { value: 300, better: 'lower' },
    run: async ({ quick }) => (await pageAbuse(quick)).peakMb,
  },
  {
    name: 'page_abuse_rss_baseline_mb',
    unit: 'MB',
    description:
      'RSS of the relay process of page_abuse_rss_peak_mb just before the attack (bucket filled, writer/observer connected), for comparison.',
    run: async ({ quick }) => (await pageAbuse(quick)).baselineMb,
  },
  {
    name: 'page_abuse_rss_after_mb',
    unit: 'MB',
    description:
      'RSS of the relay process of page_abuse_rss_peak_mb 5 s after the attackers closed their sockets (should be near its baseline before the attack).',
    run: async ({ quick }) => (await pageAbuse(quick)).afterMb,
  },
  {
    name: 'page_abuse_write_observe_p99_ms',
    unit: 'ms',
    description:
      "The 99th percentile of put() to the other Replica's onChange during the page_abuse_rss_peak_mb attack (unobserved writes count as infinite).",
    target: { value: 50, better: 'lower' },
    repetitions: { full: 2000, quick: 600, of: 'samples' },
    run: async ({ quick }) => (await pageAbuse(quick)).p99,
  },
  {
    name: 'fanout_1k_deliveries_s',
    unit: 'ops/s',
    description:
      'Op deliveries per second (one op reaching one socket) from one writer pushing 20-op frames to 1,000 subscribed sockets of a relay child process over loopback; receivers count ops from the frame header; 8 s (--quick: 3 s) after 1 s warm-up.',
    run: ({ quick }) => fanout(quick),
  },
];
