import type { Measured, Metric } from '../metric';
import { yjsColdStart, yjsJoin, yjsWriteObserve } from './compare/yjs-runs';

/**
 * Yjs on our peer workloads, measured as ours are (see `compare/yjs-runs.ts`): a `Y.Map` of the
 * same keys and values (`k0000123`, ~100-byte JSON objects, one `set` per op), the stock
 * y-websocket server, y-websocket and y-indexeddb in Chromium. main.ts prints
 * `ratio yjs_<figure>/<our figure>` for each: above 1, we are faster.
 */

/** A join's value, with a note when the writer fell short of the 500 ops/s the workload asks. */
const joinValue = async (run: Promise<{ ms: number; writerOps: number }>): Promise<Measured> => {
  const { ms, writerOps } = await run;
  return writerOps >= 450
    ? { value: ms }
    : { value: ms, note: `the Yjs writer achieved ${writerOps} of 500 ops/s meanwhile` };
};

let join1m: Promise<{ ms: number; writerOps: number }> | undefined;

export const yjsMetrics: Metric[] = [
  {
    name: 'yjs_join_100k_ms',
    quickName: 'yjs_join_20k_ms',
    unit: 'ms',
    system: 'yjs',
    repetitions: { full: 5, quick: 1, of: 'joins' },
    description:
      "join_100k_ms's workload with Yjs: a freshly launched, settled Chromium joins a 100,000-key Y.Map (filled in the server in one transaction) from the stock y-websocket server (@y/websocket-server's setupWSConnection on `ws`, in memory, a child process) while a Node y-websocket client sets 500 keys/s (5 per transaction every 10 ms). ms from creating the Y.Doc with y-indexeddb and y-websocket until all 100,000 keys are in the map, the writer's writes made before the join started are too, and every update y-indexeddb stored so far is committed (a transaction after them completes); afterwards the stored updates, merged, must hold all of it. Median of 5 joins. --quick: 20,000 keys, one join.",
    run: ({ quick }) =>
      joinValue(yjsJoin(quick ? 20_000 : 100_000, quick ? 1 : 5, quick ? 120_000 : 360_000)),
  },
  {
    name: 'yjs_join_1m_ms',
    quickName: 'yjs_join_200k_ms',
    unit: 'ms',
    system: 'yjs',
    repetitions: { full: 3, quick: 1, of: 'joins' },
    description:
      'The same Yjs join at 1,000,000 keys, with 500 sets/s written meanwhile: median of 3 joins (--quick: 200,000 keys, one join). The Node writer takes messages up to 2 GiB (`ws` refuses over 100 MiB by default; the first sync message of a million keys is ~110 MB, which a browser takes).',
    run: ({ quick }) => {
      join1m ??= yjsJoin(quick ? 200_000 : 1_000_000, quick ? 1 : 3, quick ? 180_000 : 600_000);
      return joinValue(join1m);
    },
  },
  {
    name: 'yjs_cold_start_100k_ms',
    quickName: 'yjs_cold_start_20k_ms',
    unit: 'ms',
    system: 'yjs',
    repetitions: { full: 5, quick: 5, of: 'launches' },
    description:
      'cold_start_100k_ms with Yjs: a freshly launched browser (same profile) opens the y-indexeddb database of a joined 100,000-key Y.Map: ms from creating the Y.Doc and IndexeddbPersistence until whenSynced and its first 50 keys read (ours answers a 50-row scan); all 100,000 checked afterwards. No y-websocket provider: the document is read from IndexedDB alone (a provider would start its own sync meanwhile). Median of 5 launches. --quick: 20,000 keys.',
    run: ({ quick }) => yjsColdStart(quick ? 20_000 : 100_000, quick ? 120_000 : 240_000),
  },
  {
    name: 'yjs_write_observe_p50_ms',
    unit: 'ms',
    system: 'yjs',
    repetitions: { full: 2000, quick: 600, of: 'samples' },
    description:
      "Median time from a Node y-websocket client's map.set to a page's Y.Map observer seeing it (y-websocket and y-indexeddb in Chromium), through the stock y-websocket server in a child process: write_observe's loop (200 writes/s for 10 s after 1 s warm-up, --quick 3 s; unobserved writes count as infinite). Compare with write_observe_browser_p50_ms (ours with a browser reader): the two clocks are lined up from the fastest of 200 round trips to the page.",
    run: async ({ quick }) => (await yjsWriteObserve(quick, 120_000)).p50,
  },
  {
    name: 'yjs_write_observe_p99_ms',
    unit: 'ms',
    system: 'yjs',
    repetitions: { full: 2000, quick: 600, of: 'samples' },
    description: 'The 99th percentile of the same run as yjs_write_observe_p50_ms.',
    run: async ({ quick }) => (await yjsWriteObserve(quick, 120_000)).p99,
  },
];
