import type { Metric } from '../metric';
import { coldStart } from './peer/cold-start';
import { idbFloor, type JoinCpu, join100k, joinBucket, joinMillion } from './peer/join';
import { liveQuery } from './peer/live-query';
import { writeObserveBrowser } from './peer/observe';

/**
 * Browser peer benchmarks, in headless Chromium against the real relay. Each run starts the
 * relay CLI (child process, fresh data directory, dev tokens) serving a Vite-built page of
 * `apps/bench/src/peer-page`; Node replicas seed and write over WebSockets; the page measures
 * with `performance.now()`. The measurements live in `peer/` (join, cold start, live query),
 * on shared plumbing (`harness.ts`: page, relay, replicas; `browser.ts`; `trace.ts`).
 */

/** The CPU time `process` spent during each of join_100k_ms's joins: `what` it is and does. */
function joinCpuMetric(process: keyof JoinCpu, what: string): Metric {
  return {
    name: `join_100k_${process}_cpu_ms`,
    quickName: `join_20k_${process}_cpu_ms`,
    unit: 'ms',
    description: `No target, for reading join_100k_ms: CPU time during each of join_100k_ms's joins (from /proc, 10 ms ticks; median of the 5) of ${what}`,
    repetitions: { full: 5, quick: 1, of: 'joins' },
    run: async ({ quick }) => (await join100k(quick)).cpu[process],
  };
}

export const peerMetrics: Metric[] = [
  {
    name: 'join_100k_ms',
    quickName: 'join_20k_ms',
    unit: 'ms',
    description:
      'Headless Chromium joins a 100,000-key bucket (~100-byte values) from the real relay while a Node replica writes 500 ops/s to it: ms from createClient until the bucket is ready (the ready flag is committed with the last data); median of 5 joins, each in a freshly launched browser once it has finished starting up (its CPU use has settled; the app is opened in a running browser). --quick: 20,000 keys, one join.',
    target: { value: 1500, better: 'lower' },
    repetitions: { full: 5, quick: 1, of: 'joins' },
    run: async ({ quick }) => (await join100k(quick)).ms,
  },
  joinCpuMetric(
    'renderer',
    "the joining tab's renderer process (the page and the SharedWorker that downloads, decodes and stores). Close to the join's own time, it says the worker's one thread bounds the join.",
  ),
  joinCpuMetric(
    'relay',
    "the relay process (serving the pages, and the writer's 500 ops/s). The relay's page cache serves these joins (the writer's own join filled it); `PAGE_CACHE_MB=0 npm run bench -- --only join_100k_relay_cpu_ms` measures the relay without it.",
  ),
  joinCpuMetric(
    'browser',
    "Chromium's browser process (network service, IndexedDB's backend writing LevelDB).",
  ),
  joinCpuMetric(
    'total',
    "the relay and every Chromium process together (the three above, the GPU and utility processes). A join cannot take less wall time than this divided by the machine's cores (2 here), however well its processes overlap: when that quotient exceeds a join target, the target cannot be met without cutting CPU. The writer (a Node replica in the bench's own process) is not counted; the window runs from just before createClient to just after ready, a few ms longer than the join.",
  ),
  {
    name: 'join_1m_ms',
    quickName: 'join_200k_ms',
    unit: 'ms',
    description:
      'The same join at 1,000,000 keys, with 500 ops/s written meanwhile: median of 3 joins, each in a freshly launched browser. --quick: 200,000 keys, one join.',
    target: { value: 10_000, better: 'lower' },
    repetitions: { full: 3, quick: 1, of: 'joins' },
    run: async ({ quick }) => (await joinMillion(quick)).ms,
  },
  {
    name: 'join_1m_total_cpu_ms',
    quickName: 'join_200k_total_cpu_ms',
    unit: 'ms',
    description:
      'No target, for reading join_1m_ms: CPU time of the relay and every Chromium process during the 1,000,000-key joins (from /proc; median of the 3), as join_100k_total_cpu_ms. Divided by the cores it bounds the join from below.',
    repetitions: { full: 3, quick: 1, of: 'joins' },
    run: async ({ quick }) => (await joinMillion(quick)).cpu.total,
  },
  {
    name: 'join_spec_100k_of_1m_ms',
    quickName: 'join_spec_20k_of_200k_ms',
    unit: 'ms',
    description:
      "The join of join_100k_ms, of a replication spec instead of a whole bucket: the prefix `k00` (keys 0-99,999: 10%) of a 1,000,000-key bucket, while the Node replica writes 500 ops/s across the whole bucket (90% of them outside the spec, which the relay leaves out of the join's stream); median of 5 joins. The relay computes a spec's checksum with one scan of its entries when its first subscriber comes and keeps it (the 8 most recent specs) after the last leaves, and keeps the spec's pages in its page cache, so the first join pays that scan (about +400 ms here) and the reads of every page, and the next four do not. Issue 21 asks for at most 1.2x join_100k_ms. --quick: prefixes `k000`, `k001` (20,000 keys) of 200,000, one join.",
    repetitions: { full: 5, quick: 1, of: 'joins' },
    run: async ({ quick }) =>
      (
        await joinBucket(
          quick ? 200_000 : 1_000_000,
          quick ? 1 : 5,
          undefined,
          quick
            ? { prefixes: ['k000', 'k001'], first: 0, keys: 20_000 }
            : { prefixes: ['k00'], first: 0, keys: 100_000 },
        )
      ).ms,
  },
  {
    name: 'join_1m_heap_mb',
    quickName: 'join_200k_heap_mb',
    unit: 'MB',
    description:
      'Peak memory of the SharedWorker during the 1,000,000-key joins (the highest of the 3): JS heap plus ArrayBuffer backing stores (CDP Runtime.getHeapUsage usedSize + backingStorageSize, every 50 ms). Data size: 1M x (~100 B value + 8 B key + 24 B version) ~ 130 MB; issue 20 asks for at most 150 MB. --quick: 200,000 keys, one join.',
    target: { value: 150, better: 'lower' },
    repetitions: { full: 3, quick: 1, of: 'joins' },
    run: async ({ quick }) => (await joinMillion(quick)).heapMb,
  },
  {
    name: 'idb_floor_100k_ms',
    quickName: 'idb_floor_20k_ms',
    unit: 'ms',
    repetitions: { full: 3, quick: 3, of: 'launches' },
    description:
      "No target, for reading the join figures: ms a freshly launched (and settled, as for the join) browser spends only in IndexedDB transactions writing 100,000 entries like the join's (same page records, 2,000 entries per transaction, building them not timed, no network, no sync); median of 3 launches. A join that stores in IndexedDB cannot be faster on this machine. --quick: 20,000.",
    run: ({ quick }) => idbFloor(quick ? 20_000 : 100_000),
  },
  {
    name: 'idb_floor_1m_ms',
    quickName: 'idb_floor_200k_ms',
    unit: 'ms',
    repetitions: { full: 3, quick: 3, of: 'launches' },
    description: 'The same at 1,000,000 entries (--quick: 200,000).',
    run: ({ quick }) => idbFloor(quick ? 200_000 : 1_000_000),
  },
  {
    name: 'cold_start_100k_ms',
    quickName: 'cold_start_20k_ms',
    unit: 'ms',
    description:
      'A freshly launched browser (same profile) opens a database holding a 100,000-key bucket: ms from createClient (SharedWorker start, IndexedDB open) until a first 50-row scan is answered; median of 5 launches. --quick: 20,000 keys.',
    target: { value: 150, better: 'lower' },
    repetitions: { full: 5, quick: 5, of: 'launches' },
    run: ({ quick }) => coldStart(quick),
  },
  {
    name: 'live_query_batch_p99_ms',
    unit: 'ms',
    description:
      "Main-thread time for a live query to receive a 1,000-change batch (a transferred event batch: deserialize, decode, apply, callback): the CPU time of the main-thread task that delivers it (`tdur` of Chromium's RunTask trace event), p99 over 500 batches after 20 warm-up ones (the 5th slowest; the trace is read as a stream and filtered, as a whole it outgrows a JavaScript string); another tab of the same browser writes the batches, so the watching tab only receives. --quick: 40 batches.",
    target: { value: 1, better: 'lower' },
    repetitions: { full: 500, quick: 40, of: 'batches' },
    run: async ({ quick }) => (await liveQuery(quick)).cpuP99,
  },
  {
    name: 'live_query_batch_wall_p99_ms',
    unit: 'ms',
    description:
      "No target, for reading the one above: the same deliveries' wall time, from the message handler's start to the callback's end (performance.now() in the page). Unlike CPU time it includes any time the OS ran other threads meanwhile: on this 2-core machine the relay, the worker and the browser process are busy with the same batch while it arrives.",
    repetitions: { full: 500, quick: 40, of: 'batches' },
    run: async ({ quick }) => (await liveQuery(quick)).wallP99,
  },
  {
    name: 'write_observe_browser_p50_ms',
    unit: 'ms',
    repetitions: { full: 2000, quick: 600, of: 'samples' },
    description:
      "No target; the figure yjs_write_observe_p50_ms compares with: write_observe_p50_ms's loop (200 writes/s for 10 s after 1 s warm-up, --quick 3 s; unobserved writes count as infinite) from a Node Replica's put() through the relay child process to our client in headless Chromium (a settled browser on a profile directory: SharedWorker, IndexedDB on disk) seeing it in a live query's callback. The Node and page clocks are lined up from the fastest of 200 round trips to the page (off by at most ~0.2 ms).",
    run: async ({ quick }) => (await writeObserveBrowser(quick)).p50,
  },
  {
    name: 'write_observe_browser_p99_ms',
    unit: 'ms',
    repetitions: { full: 2000, quick: 600, of: 'samples' },
    description: 'The 99th percentile of the same run as write_observe_browser_p50_ms.',
    run: async ({ quick }) => (await writeObserveBrowser(quick)).p99,
  },
];
