import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type EdgeRelay, startEdgeRelay } from '@mittsync/relay/node';
import type { Metric } from '../metric';
import { freePort, profileIsolate } from './inspector';
import { joinBucket } from './peer/join';
import { BENCH_SECRET, ingestAt, writeObserveLoop } from './relay';

/**
 * The edge relay (the Worker and one SQLite-backed Durable Object per bucket) on workerd
 * through Miniflare, measured with the same workloads and clients as the Node relay's figures
 * in the same run. workerd is its own process; its objects persist in a temporary directory.
 */

const LIMITS = {
  connectionsPerAddressPerMinute: 1_000_000,
  httpRequestsPerAddressPerMinute: 1_000_000,
  opsPerConnectionPerSecond: 10_000_000,
};

async function withEdge<T>(fn: (relay: EdgeRelay) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'mittsync-edge-bench-'));
  const relay = await startEdgeRelay({ persist: dir, secret: BENCH_SECRET, limits: LIMITS });
  try {
    return await fn(relay);
  } finally {
    await relay.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

let observeRun: Promise<{ p50: number; p99: number }> | undefined;
const observe = (quick: boolean) => {
  observeRun ??= withEdge((relay) => writeObserveLoop(relay.url, quick));
  return observeRun;
};

export const edgeMetrics: Metric[] = [
  {
    name: 'edge_ingest_ops_s',
    unit: 'ops/s',
    description:
      "relay_ingest_ops_s's workload (4 writers, 500-op frames, 4 in flight each, one bucket) against the edge relay on workerd: acked ops per second. One bucket is one Durable Object, single-threaded.",
    run: ({ quick }) => withEdge((relay) => ingestAt(relay.url, quick)),
  },
  {
    name: 'edge_write_observe_p50_ms',
    unit: 'ms',
    description:
      "write_observe_p50_ms's loop (a Node replica writes 200/s, another observes each write) through the edge relay: the Worker's lobby, then one socket per bucket to the bucket's object.",
    run: async ({ quick }) => (await observe(quick)).p50,
  },
  {
    name: 'edge_write_observe_p99_ms',
    unit: 'ms',
    description: 'The same, 99th percentile.',
    target: { value: 15, better: 'lower' },
    run: async ({ quick }) => (await observe(quick)).p99,
  },
  {
    name: 'edge_join_100k_ms',
    quickName: 'edge_join_20k_ms',
    unit: 'ms',
    description:
      "join_100k_ms's join (headless Chromium, 100,000 keys, 500 ops/s written meanwhile, median of 5 fresh browsers) from the edge relay on workerd, which also serves the page (Workers static assets). Target: at most 1.5x join_100k_ms of the same run. --quick: 20,000 keys, one join.",
    run: async ({ quick }) =>
      (
        await joinBucket(quick ? 20_000 : 100_000, quick ? 1 : 5, async (staticDir, opts) => {
          // RELAY_PROFILE=DIR: a CPU profile of workerd's isolate (the Worker and its objects).
          const inspectorPort = opts?.profile === true ? await freePort() : undefined;
          const relay = await startEdgeRelay({
            ...(opts?.data === undefined ? {} : { persist: opts.data }),
            devSecret: randomBytes(32).toString('hex'),
            staticDir,
            limits: LIMITS,
            ...(inspectorPort === undefined ? {} : { inspectorPort }),
          });
          const profiling =
            inspectorPort === undefined || process.env.RELAY_PROFILE === undefined
              ? undefined
              : await profileIsolate(inspectorPort, process.env.RELAY_PROFILE);
          return {
            url: relay.url,
            httpUrl: relay.httpUrl,
            stop: async () => {
              await profiling?.();
              await relay.close();
            },
          };
        })
      ).ms,
  },
];
