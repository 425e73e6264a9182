import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext } from 'playwright';
import { median } from '../../metric';
import { benchKey } from '../../peer-page/data';
import { cpuByProcess, cpuDelta, launchProfile, sampleWorkerHeap, settle, workerSession } from './browser';
import {
  backgroundWriter,
  buildPage,
  type PageApi,
  type RelayStarter,
  type RunningRelay,
  seed,
  startRelay,
} from './harness';

export interface JoinResult {
  ms: number;
  heapMb: number;
  /** CPU ms each process spent during the join (median over the joins). */
  cpu: JoinCpu;
}

/**
 * CPU ms during a join, from /proc (10 ms ticks): the relay process, the joining tab's renderer
 * (the page and its SharedWorker, where the worker does the work) and the browser process
 * (network, IndexedDB's backend).
 */
export interface JoinCpu {
  relay: number;
  renderer: number;
  browser: number;
  /** The relay and every Chromium process together. */
  total: number;
}

/** {@link JoinCpu} of the change from `before` to `after` (see `cpuByProcess`). */
function joinCpu(before: Map<string, number>, after: Map<string, number>): JoinCpu {
  const ms = (match: (kind: string) => boolean) =>
    Math.round(
      1000 * [...after].filter(([k]) => match(k)).reduce((t, [k, v]) => t + v - (before.get(k) ?? 0), 0),
    );
  return {
    relay: ms((k) => k === 'relay'),
    renderer: ms((k) => k === 'chromium renderer'),
    browser: ms((k) => k === 'chromium browser'),
    total: ms((k) => k === 'relay' || k === 'workerd' || k.startsWith('chromium')),
  };
}

/**
 * A part of the bench bucket to join instead of the whole: the keys under `prefixes`, which
 * hold `keys` of them starting at key number `first`.
 */
export interface JoinPart {
  prefixes: string[];
  first: number;
  keys: number;
}

/**
 * Joins an `n`-key bucket (or `part` of it) while another replica writes 500 ops/s to the
 * whole bucket; verifies a sample of keys.
 */
export async function joinBucket(
  n: number,
  runs = 1,
  start: RelayStarter = startRelay,
  part?: JoinPart,
): Promise<JoinResult> {
  const dist = await buildPage();
  const data = mkdtempSync(join(tmpdir(), 'mittsync-peer-bench-'));
  let relay = await start(dist, { data });
  try {
    const bucket = 'join';
    await seed(relay, bucket, n);
    if (process.env.RELAY_PROFILE !== undefined) {
      // Profile the join only: restart the relay on the seeded data with the profiler on.
      await relay.stop();
      relay = await start(dist, { data, profile: true });
    }
    const stopWriter = await backgroundWriter(relay, bucket, n, 500);
    try {
      const times: number[] = [];
      const cpus: JoinCpu[] = [];
      let heapMb = 0;
      for (let run = 0; run < runs; run++) {
        // Each join is a new device: a browser on a new, empty profile directory, so IndexedDB
        // writes to disk (a plain launch's contexts are off the record: IndexedDB in memory).
        const dir = mkdtempSync(join(tmpdir(), 'mittsync-join-profile-'));
        const context = await launchProfile(dir);
        try {
          const r = await joinOnce(context, relay, bucket, n, part);
          if (process.env.PEER_DEBUG) console.error(`IndexedDB on disk: ${idbFiles(dir)}`);
          times.push(r.ms);
          cpus.push(r.cpu);
          heapMb = Math.max(heapMb, r.heapMb);
        } finally {
          await context.close();
          rmSync(dir, { recursive: true, force: true });
        }
      }
      if (process.env.PEER_DEBUG && runs > 1) console.error(`join runs: ${times.join(', ')} ms`);
      const cpu = {
        relay: median(cpus.map((c) => c.relay)),
        renderer: median(cpus.map((c) => c.renderer)),
        browser: median(cpus.map((c) => c.browser)),
        total: median(cpus.map((c) => c.total)),
      };
      return { ms: median(times), heapMb, cpu };
    } finally {
      await stopWriter();
    }
  } finally {
    await relay.stop();
    rmSync(data, { recursive: true, force: true });
  }
}

/**
 * What IndexedDB keeps in the profile `dir`: files and bytes in LevelDB, and in blob files
 * (records Chromium keeps beside LevelDB; at our page size there are none).
 */
function idbFiles(dir: string): string {
  const tally = { leveldb: { files: 0, bytes: 0 }, blob: { files: 0, bytes: 0 } };
  const walk = (d: string, kind: keyof typeof tally | undefined) => {
    for (const f of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, f.name);
      const k = f.name.endsWith('.indexeddb.blob')
        ? 'blob'
        : f.name.endsWith('.indexeddb.leveldb')
          ? 'leveldb'
          : kind;
      if (f.isDirectory()) walk(path, k);
      else if (k !== undefined) {
        tally[k].files++;
        tally[k].bytes += statSync(path).size;
      }
    }
  };
  walk(join(dir, 'Default', 'IndexedDB'), undefined);
  const mb = (b: number) => (b / 1e6).toFixed(1);
  const { leveldb: l, blob: b } = tally;
  return `LevelDB ${l.files} files ${mb(l.bytes)} MB, blobs ${b.files} files ${mb(b.bytes)} MB`;
}

/** One join in `browser`, checked against a sample of keys afterwards. */
async function joinOnce(
  context: BrowserContext,
  relay: RunningRelay,
  bucket: string,
  n: number,
  part?: JoinPart,
): Promise<JoinResult> {
  const browser = context.browser();
  if (browser === null) throw new Error('no browser behind the persistent context');
  const page = context.pages()[0] ?? (await context.newPage());
  await page.goto(`${relay.httpUrl}/index.html`);
  await page.waitForFunction(() => 'mittsyncBench' in globalThis);
  // A user opens the app in a running browser: let the fresh one finish starting up first.
  await settle();
  const cpuBefore = cpuByProcess();
  // PEER_SYNC='{"pageSize":5000}': catch-up tuning for experiments (defaults otherwise).
  const sync = process.env.PEER_SYNC === undefined ? undefined : JSON.parse(process.env.PEER_SYNC);
  const spec = part === undefined ? undefined : { prefixes: part.prefixes };
  const joined = page.evaluate(
    ([b, s, p]) =>
      (globalThis as unknown as PageApi).mittsyncBench.join(
        b as string,
        'bench-join',
        s as never,
        p as never,
      ),
    [bucket, sync, spec] as const,
  );
  const worker = await workerSession(browser);
  // PEER_PROFILE=FILE: a CPU profile of the worker during the join (open it in DevTools).
  const profile = process.env.PEER_PROFILE;
  if (profile !== undefined) {
    await worker.send('Profiler.enable');
    await worker.send('Profiler.setSamplingInterval', { interval: 200 });
    await worker.send('Profiler.start');
  }
  const heap = sampleWorkerHeap(worker);
  const { ms, log } = await joined;
  const peak = await heap();
  if (profile !== undefined) {
    const r = await worker.send<{ profile: unknown }>('Profiler.stop', {}, 30_000);
    writeFileSync(profile, JSON.stringify(r?.profile ?? null));
  }
  await worker.detach();
  const cpuAfter = cpuByProcess();
  if (process.env.PEER_DEBUG) {
    console.error(log.join('\n'));
    console.error(`CPU during the join: ${cpuDelta(cpuBefore, cpuAfter)}`);
  }
  const first = part?.first ?? 0;
  const count = part?.keys ?? n;
  const sample = Array.from({ length: 200 }, (_, i) => benchKey(first + Math.floor((i * count) / 200)));
  // A part's join must hold none of the rest: one key past it is checked too.
  const outside = part === undefined || first + count >= n ? [] : [benchKey(first + count)];
  const got = await page.evaluate(
    ([b, keys]) => (globalThis as unknown as PageApi).mittsyncBench.getMany(b as string, keys as string[]),
    [bucket, [...sample, ...outside]] as const,
  );
  const missing = got.slice(0, sample.length).filter((v) => v === undefined).length;
  if (missing > 0) throw new Error(`${missing} of ${sample.length} sampled keys missing after the join`);
  if (got.slice(sample.length).some((v) => v !== undefined))
    throw new Error('the join of a part of the bucket holds a key outside it');
  await page.evaluate(() => (globalThis as unknown as PageApi).mittsyncBench.close());
  return { ms: Math.round(ms), heapMb: Math.round(peak / 2 ** 20), cpu: joinCpu(cpuBefore, cpuAfter) };
}

let joins100k: Promise<JoinResult> | undefined;
/** The joins of join_100k_ms (run once, for the metrics that read them). */
export const join100k = (quick: boolean) => {
  joins100k ??= joinBucket(quick ? 20_000 : 100_000, quick ? 1 : 5);
  return joins100k;
};

let join1m: Promise<JoinResult> | undefined;
export const joinMillion = (quick: boolean) => {
  join1m ??= joinBucket(quick ? 200_000 : 1_000_000, quick ? 1 : 3);
  return join1m;
};

/** Median over 3 freshly launched browsers of {@link BenchApi.idbFloor}. */
export async function idbFloor(n: number): Promise<number> {
  const dist = await buildPage();
  const relay = await startRelay(dist, { data: mkdtempSync(join(tmpdir(), 'mittsync-peer-bench-')) });
  try {
    const times: number[] = [];
    for (let run = 0; run < 3; run++) {
      const dir = mkdtempSync(join(tmpdir(), 'mittsync-floor-profile-'));
      const context = await launchProfile(dir);
      try {
        const page = await context.newPage();
        await page.goto(`${relay.httpUrl}/index.html`);
        await page.waitForFunction(() => 'mittsyncBench' in globalThis);
        await settle(); // as the join does, so the two compare
        times.push(
          await page.evaluate((k) => (globalThis as unknown as PageApi).mittsyncBench.idbFloor(k), n),
        );
      } finally {
        await context.close();
        rmSync(dir, { recursive: true, force: true });
      }
    }
    if (process.env.PEER_DEBUG)
      console.error(`idb floor runs at ${n}: ${times.map(Math.round).join(', ')} ms`);
    return Math.round(times.sort((a, b) => a - b)[1] as number);
  } finally {
    await relay.stop();
  }
}
