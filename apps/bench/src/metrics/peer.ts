import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MemoryReplicaStorage, Replica } from '@mittsync/core';
import { type RelayProcess, spawnRelayProcess, WebSocketTransport } from '@mittsync/relay/node';
import type { Browser, BrowserContext, CDPSession } from 'playwright';
import type { BenchApi } from '../../../../packages/peer/src/bench/bench-page';
import { benchKey, benchValue } from '../../../../packages/peer/src/bench/data';
import { type Metric, percentile } from '../metric';

/**
 * Browser peer benchmarks, in headless Chromium against the real relay. Each run starts the
 * relay CLI (child process, fresh data directory, dev tokens) serving a Vite-built page of
 * `packages/peer/src/bench`; Node replicas seed and write over WebSockets; the page measures
 * with `performance.now()`.
 */

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..', '..', '..');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type RunningRelay = RelayProcess;

let built: Promise<string> | undefined;

/** Builds the bench page (and its worker) once per process. */
function buildPage(): Promise<string> {
  built ??= (async () => {
    const { build } = await import('vite');
    const outDir = mkdtempSync(join(tmpdir(), 'mittsync-peer-page-'));
    process.once('exit', () => rmSync(outDir, { recursive: true, force: true }));
    await build({
      root: join(root, 'packages', 'peer', 'src', 'bench'),
      logLevel: 'warn',
      build: { outDir, emptyOutDir: true, target: 'es2022', minify: process.env.PEER_PROFILE === undefined },
      worker: { format: 'es' },
    });
    return outDir;
  })();
  return built;
}

/** The relay CLI serving the bench page, with limits no benchmark reaches. */
function startRelay(
  staticDir: string,
  opts: { data?: string; profile?: boolean } = {},
): Promise<RunningRelay> {
  return spawnRelayProcess({
    dev: true,
    ...(opts.data === undefined ? {} : { data: opts.data }),
    limits: {
      connectionsPerAddressPerMinute: 1_000_000,
      httpRequestsPerAddressPerMinute: 1_000_000,
      opsPerConnectionPerSecond: 10_000_000,
    },
    args: ['--static', staticDir],
    // RELAY_PROFILE=DIR: the relay writes a CPU profile there when it stops.
    ...(process.env.RELAY_PROFILE === undefined || opts.profile !== true
      ? {}
      : {
          nodeArgs: ['--cpu-prof', '--cpu-prof-interval', '200', '--cpu-prof-dir', process.env.RELAY_PROFILE],
        }),
  });
}

/** A Node replica on the relay (memory storage), authenticated with a dev token. */
async function nodeReplica(relay: RunningRelay, id: string): Promise<Replica> {
  const getToken = async () => {
    const res = await fetch(`${relay.httpUrl}/v1/dev/token?sub=${id}`);
    return ((await res.json()) as { token: string }).token;
  };
  return Replica.open({
    storage: new MemoryReplicaStorage(),
    transport: new WebSocketTransport({ url: relay.url, getToken }),
    replicaId: id,
  });
}

/** Writes `n` keys with relay acks, in transactions of 5,000. */
async function seed(relay: RunningRelay, bucket: string, n: number): Promise<void> {
  const r = await nodeReplica(relay, 'seeder');
  await r.openBucket(bucket);
  // Joined first: a join that overlaps the writes would download them again as pages.
  await r.whenReady(bucket);
  for (let start = 0; start < n; start += 5000) {
    const writes = [];
    for (let i = start; i < Math.min(n, start + 5000); i++)
      writes.push({ key: benchKey(i), value: benchValue(i) });
    await r.transact(bucket, writes, { ack: 'relay' });
  }
  await r.close();
}

/** Another replica writing `perSecond` ops/s to random existing keys until stopped. */
async function backgroundWriter(relay: RunningRelay, bucket: string, n: number, perSecond: number) {
  const r = await nodeReplica(relay, 'writer');
  await r.openBucket(bucket);
  // A writer that is already in sync, as the scenario says: its own catch-up would otherwise
  // run during the first join, doubling the relay's reads and loading the same two cores.
  await r.whenReady(bucket);
  let stop = false;
  let rev = 0;
  const loop = (async () => {
    const every = 10;
    const per = Math.max(1, Math.round((perSecond * every) / 1000));
    let next = performance.now();
    while (!stop) {
      rev++;
      const writes = Array.from({ length: per }, () => {
        const i = Math.floor(Math.random() * n);
        return { key: benchKey(i), value: benchValue(i, rev) };
      });
      await r.transact(bucket, writes);
      next += every;
      await sleep(Math.max(0, next - performance.now()));
    }
  })();
  return async () => {
    stop = true;
    await loop;
    await r.close();
  };
}

async function launchOptions() {
  const chromiumMod = join(root, 'scripts', 'chromium.mjs');
  const { findChromium, CHROMIUM_ARGS } = (await import(chromiumMod)) as {
    findChromium(): string | undefined;
    CHROMIUM_ARGS: string[];
  };
  const executablePath = findChromium();
  return {
    headless: true,
    ...(executablePath === undefined ? {} : { executablePath }),
    args: [...CHROMIUM_ARGS, '--enable-precise-memory-info'],
  };
}

async function launch(): Promise<Browser> {
  const { chromium } = await import('playwright');
  return chromium.launch(await launchOptions());
}

/** A browser on a profile directory, so IndexedDB survives closing it (a real cold start). */
async function launchProfile(dir: string): Promise<BrowserContext> {
  const { chromium } = await import('playwright');
  return chromium.launchPersistentContext(dir, await launchOptions());
}

/**
 * CPU seconds used so far by the relay and by Chromium's processes, by kind (Linux /proc;
 * for PEER_DEBUG breakdowns and {@link settle}). Kinds: `relay`, and `chromium <--type=>`
 * (browser, renderer, utility, gpu-process...; `(browser UI)` for the browser's own WebUI
 * renderer). With `PEER_DEBUG=threads`, each renderer thread as well.
 */
function cpuByProcess(threads = process.env.PEER_DEBUG === 'threads'): Map<string, number> {
  const out = new Map<string, number>();
  let dirs: string[] = [];
  try {
    dirs = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return out;
  }
  for (const pid of dirs) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
      let kind: string | undefined;
      if (cmd.includes('mittsync.mjs relay')) kind = 'relay';
      else if (/chrom/i.test(cmd)) {
        kind = `chromium ${/--type=(\S+)/.exec(cmd)?.[1] ?? 'browser'}`;
        // New headless is the whole browser: its own UI (WebUI) runs in renderers too.
        if (cmd.includes('--top-chrome-webui')) kind += ' (browser UI)';
      }
      if (kind === undefined) continue;
      const seconds = (statFile: string) => {
        const stat = readFileSync(statFile, 'utf8');
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        return (Number(f[11]) + Number(f[12])) / 100;
      };
      out.set(kind, (out.get(kind) ?? 0) + seconds(`/proc/${pid}/stat`));
      if (!threads || !kind.startsWith('chromium renderer')) continue;
      // By thread too (the worker, the page, V8's helpers...).
      for (const tid of readdirSync(`/proc/${pid}/task`)) {
        const name = tid === pid ? 'main' : readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
        const k = `${kind} ${pid} ${name}`;
        out.set(k, (out.get(k) ?? 0) + seconds(`/proc/${pid}/task/${tid}/stat`));
      }
    } catch {
      // the process ended meanwhile
    }
  }
  return out;
}

/**
 * Waits until Chromium's processes are quiet (under ~8% of a core for 250 ms; 10 s at most).
 * A freshly launched browser keeps starting its own UI for a few seconds here (new headless
 * runs the browser's WebUI renderer, ~0.5-0.7 s of CPU), which a fixed 500 ms wait left to
 * overlap the measured join on 2 cores.
 */
async function settle(): Promise<void> {
  const chromium = (m: Map<string, number>) =>
    [...m].filter(([k]) => k.startsWith('chromium')).reduce((sum, [, v]) => sum + v, 0);
  const until = Date.now() + 10_000;
  let last = chromium(cpuByProcess(false));
  await sleep(500);
  while (Date.now() < until) {
    await sleep(250);
    const now = chromium(cpuByProcess(false));
    if (now - last <= 0.02) return;
    last = now;
  }
}

function cpuDelta(before: Map<string, number>, after: Map<string, number>): string {
  return [...after]
    .map(([k, v]) => [k, v - (before.get(k) ?? 0)] as const)
    .filter(([, v]) => v > 0.02)
    .map(([k, v]) => `${k} ${v.toFixed(2)} s`)
    .join(', ');
}

/** A CDP session on the page's SharedWorker (found through the browser's target list). */
async function workerSession(browser: Browser) {
  const cdp: CDPSession = await browser.newBrowserCDPSession();
  let targetId: string | undefined;
  for (let i = 0; i < 200 && targetId === undefined; i++) {
    const { targetInfos } = (await cdp.send('Target.getTargets')) as {
      targetInfos: { targetId: string; type: string }[];
    };
    targetId = targetInfos.find((t) => t.type === 'shared_worker')?.targetId;
    if (targetId === undefined) await sleep(10);
  }
  if (targetId === undefined) throw new Error('no SharedWorker target found');
  const { sessionId } = (await cdp.send('Target.attachToTarget', { targetId, flatten: false })) as {
    sessionId: string;
  };
  let id = 1;
  const waiting = new Map<number, (result: unknown) => void>();
  cdp.on('Target.receivedMessageFromTarget', (ev: { sessionId: string; message: string }) => {
    if (ev.sessionId !== sessionId) return;
    const msg = JSON.parse(ev.message) as { id?: number; result?: unknown };
    if (msg.id !== undefined) waiting.get(msg.id)?.(msg.result);
  });
  return {
    /** Sends a CDP command to the worker; resolves with its result (undefined after `timeoutMs`). */
    send<T>(method: string, params: object = {}, timeoutMs = 2000): Promise<T | undefined> {
      return new Promise((resolve) => {
        const n = id++;
        waiting.set(n, (r) => {
          waiting.delete(n);
          resolve(r as T);
        });
        void cdp.send('Target.sendMessageToTarget', {
          sessionId,
          message: JSON.stringify({ id: n, method, params }),
        });
        setTimeout(() => resolve(undefined), timeoutMs);
      });
    },
    detach: () => cdp.detach().catch(() => undefined),
  };
}

type WorkerSession = Awaited<ReturnType<typeof workerSession>>;

/** Polls the worker's JS heap every 50 ms; the returned function stops and gives the peak. */
function sampleWorkerHeap(worker: WorkerSession): () => Promise<number> {
  let peak = 0;
  let stop = false;
  const loop = (async () => {
    while (!stop) {
      // The JS heap plus ArrayBuffer backing stores (page columns, frames), which live outside it.
      const r = await worker.send<{ usedSize: number; backingStorageSize?: number }>('Runtime.getHeapUsage');
      if (process.env.PEER_DEBUG && r !== undefined && r.backingStorageSize === undefined)
        console.error('Runtime.getHeapUsage has no backingStorageSize here: ArrayBuffers are not counted');
      peak = Math.max(peak, (r?.usedSize ?? 0) + (r?.backingStorageSize ?? 0));
      await sleep(50);
    }
  })();
  return async () => {
    stop = true;
    await loop;
    return peak;
  };
}

type PageApi = { mittsyncBench: BenchApi };

interface JoinResult {
  ms: number;
  heapMb: number;
}

/** Joins an `n`-key bucket while another replica writes 500 ops/s; verifies a sample of keys. */
async function joinBucket(n: number, runs = 1): Promise<JoinResult> {
  const dist = await buildPage();
  const data = mkdtempSync(join(tmpdir(), 'mittsync-peer-bench-'));
  let relay = await startRelay(dist, { data });
  try {
    const bucket = 'join';
    await seed(relay, bucket, n);
    if (process.env.RELAY_PROFILE !== undefined) {
      // Profile the join only: restart the relay on the seeded data with the profiler on.
      await relay.stop();
      relay = await startRelay(dist, { data, profile: true });
    }
    const stopWriter = await backgroundWriter(relay, bucket, n, 500);
    try {
      const times: number[] = [];
      let heapMb = 0;
      for (let run = 0; run < runs; run++) {
        // Each join is a new device: a browser on a new, empty profile directory, so IndexedDB
        // writes to disk (a plain launch's contexts are off the record: IndexedDB in memory).
        const dir = mkdtempSync(join(tmpdir(), 'mittsync-join-profile-'));
        const context = await launchProfile(dir);
        try {
          const r = await joinOnce(context, relay, bucket, n);
          if (process.env.PEER_DEBUG) console.error(`IndexedDB on disk: ${idbFiles(dir)}`);
          times.push(r.ms);
          heapMb = Math.max(heapMb, r.heapMb);
        } finally {
          await context.close();
          rmSync(dir, { recursive: true, force: true });
        }
      }
      if (process.env.PEER_DEBUG && runs > 1) console.error(`join runs: ${times.join(', ')} ms`);
      times.sort((a, b) => a - b);
      return { ms: times[Math.floor(times.length / 2)] as number, heapMb };
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
  const joined = page.evaluate(
    ([b, s]) => (globalThis as unknown as PageApi).mittsyncBench.join(b as string, 'bench-join', s as never),
    [bucket, sync] as const,
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
  if (process.env.PEER_DEBUG) {
    console.error(log.join('\n'));
    console.error(`CPU during the join: ${cpuDelta(cpuBefore, cpuByProcess())}`);
  }
  const sample = Array.from({ length: 200 }, (_, i) => benchKey(Math.floor((i * n) / 200)));
  const got = await page.evaluate(
    ([b, keys]) => (globalThis as unknown as PageApi).mittsyncBench.getMany(b as string, keys as string[]),
    [bucket, sample] as const,
  );
  const missing = got.filter((v) => v === undefined).length;
  if (missing > 0) throw new Error(`${missing} of ${sample.length} sampled keys missing after the join`);
  await page.evaluate(() => (globalThis as unknown as PageApi).mittsyncBench.close());
  return { ms: Math.round(ms), heapMb: Math.round(peak / 2 ** 20) };
}

let liveRun: Promise<LiveQueryResult> | undefined;
const liveQuery = (quick: boolean) => {
  liveRun ??= liveQueryBatch(quick);
  return liveRun;
};

let join1m: Promise<JoinResult> | undefined;
const joinMillion = (quick: boolean) => {
  join1m ??= joinBucket(quick ? 200_000 : 1_000_000);
  return join1m;
};

/**
 * A browser opens a stored 100k-key database and answers a first query: median of 5 starts,
 * each in a freshly launched browser on the same profile (no worker or connection left over).
 */
async function coldStart(quick: boolean): Promise<number> {
  const n = quick ? 20_000 : 100_000;
  const dist = await buildPage();
  const relay = await startRelay(dist);
  const profile = mkdtempSync(join(tmpdir(), 'mittsync-profile-'));
  try {
    const bucket = 'cold';
    await seed(relay, bucket, n);
    const load = async (context: BrowserContext) => {
      const page = context.pages()[0] ?? (await context.newPage());
      await page.goto(`${relay.httpUrl}/index.html`);
      await page.waitForFunction(() => 'mittsyncBench' in globalThis);
      return page;
    };
    const first = await launchProfile(profile);
    const page = await load(first);
    await page.evaluate(
      (b) => (globalThis as unknown as PageApi).mittsyncBench.join(b, 'bench-cold'),
      bucket,
    );
    await page.evaluate(() => (globalThis as unknown as PageApi).mittsyncBench.close());
    await first.close();
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const context = await launchProfile(profile);
      try {
        const p = await load(context);
        const r = await p.evaluate(
          (b) => (globalThis as unknown as PageApi).mittsyncBench.coldStart(b, 'bench-cold'),
          bucket,
        );
        if (r.rows !== 50) throw new Error(`cold start answered ${r.rows} rows, expected 50`);
        times.push(r.ms);
        if (process.env.PEER_DEBUG) console.error(`cold start ${r.ms.toFixed(0)} ms: ${r.steps.join(', ')}`);
        await p.evaluate(() => (globalThis as unknown as PageApi).mittsyncBench.close());
      } finally {
        await context.close();
      }
    }
    times.sort((a, b) => a - b);
    return Math.round((times[2] as number) * 10) / 10;
  } finally {
    await relay.stop();
    rmSync(profile, { recursive: true, force: true });
  }
}

type TraceEvent = {
  name: string;
  ph: string;
  pid: number;
  tid: number;
  ts: number;
  dur?: number;
  tdur?: number;
  args?: { data?: { startTime?: number } };
};

/**
 * Picks the events `keep` wants out of a Chromium trace in JSON, given in chunks: each object
 * of the `traceEvents` array is cut out by a small scanner and parsed only if `keep` accepts
 * its text. A trace of every process over a thousand deliveries is larger than one JavaScript
 * string can be, so it is never held whole.
 */
class TraceEventFilter {
  readonly events: TraceEvent[] = [];
  private depth = 0;
  private inString = false;
  private escaped = false;
  private part = '';
  private capturing = false;

  constructor(private readonly keep: (raw: string) => boolean) {}

  push(chunk: string): void {
    let from = this.capturing ? 0 : -1;
    for (let j = 0; j < chunk.length; j++) {
      const c = chunk.charCodeAt(j);
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === 0x5c) this.escaped = true;
        else if (c === 0x22) this.inString = false;
        continue;
      }
      if (c === 0x22) this.inString = true;
      else if (c === 0x7b || c === 0x5b) {
        // An object inside the top-level object's array: one event.
        if (c === 0x7b && this.depth === 2) {
          this.capturing = true;
          from = j;
        }
        this.depth++;
      } else if (c === 0x7d || c === 0x5d) {
        this.depth--;
        if (this.capturing && this.depth === 2) {
          const raw = this.part + chunk.slice(from, j + 1);
          this.part = '';
          this.capturing = false;
          from = -1;
          if (this.keep(raw)) this.events.push(JSON.parse(raw) as TraceEvent);
        }
      }
    }
    if (this.capturing) this.part += chunk.slice(Math.max(from, 0));
  }
}

/**
 * Traces `run` in `categories` (every process of the browser) and returns the events whose
 * JSON text contains one of `names`, read from Chromium as a stream (see {@link TraceEventFilter}).
 */
async function traceEvents(
  browser: Browser,
  categories: readonly string[],
  names: readonly string[],
  run: () => Promise<void>,
): Promise<TraceEvent[]> {
  const cdp = await browser.newBrowserCDPSession();
  try {
    await cdp.send('Tracing.start', {
      transferMode: 'ReturnAsStream',
      traceConfig: { includedCategories: [...categories] },
    });
    await run();
    const done = new Promise<{ stream?: string; dataLossOccurred: boolean }>((resolve) =>
      cdp.once('Tracing.tracingComplete', resolve),
    );
    await cdp.send('Tracing.end');
    const { stream: handle, dataLossOccurred } = await done;
    if (handle === undefined) throw new Error('the trace came without a stream');
    if (dataLossOccurred)
      throw new Error('the trace lost events (its buffer filled): trace fewer batches at a time');
    const filter = new TraceEventFilter((raw) => names.some((n) => raw.includes(n)));
    const utf8 = new TextDecoder();
    for (;;) {
      const { data, eof, base64Encoded } = await cdp.send('IO.read', { handle, size: 1 << 22 });
      filter.push(base64Encoded ? utf8.decode(Buffer.from(data, 'base64'), { stream: true }) : data);
      if (eof) break;
    }
    await cdp.send('IO.close', { handle });
    return filter.events;
  } finally {
    await cdp.detach().catch(() => undefined);
  }
}

/**
 * Thread (CPU) time of the main-thread tasks that ran the deliveries whose handlers started at
 * `starts` (page clock, ms), from a Chromium trace: for each, the `RunTask` event (category
 * `toplevel`) that was running then, its `tdur`. A task is the whole delivery, message
 * deserialization included; time the OS gave other threads meanwhile is not in it. The page
 * clock is lined up with the trace clock by the `mittsync-clock` mark (see `clockMark`), so
 * nothing is added to the measured tasks themselves (a user-timing mark costs ~0.1 ms).
 */
function deliveryTaskCpuMs(
  events: readonly TraceEvent[],
  starts: readonly number[],
): { cpu: number[]; tasks: TraceEvent[] } {
  const clock = events.find((e) => e.name === 'mittsync-clock');
  const at = clock?.args?.data?.startTime;
  if (clock === undefined || at === undefined) throw new Error('no clock mark in the trace');
  const tasks = events
    .filter(
      (e) =>
        e.ph === 'X' &&
        e.name === 'ThreadControllerImpl::RunTask' &&
        e.pid === clock.pid &&
        e.tid === clock.tid,
    )
    .sort((a, b) => a.ts - b.ts);
  // performance.now() is coarsened to 0.1 ms outside cross-origin isolation: allow for that.
  const slack = 150;
  const found = starts.map((start) => {
    const t = clock.ts + (start - at) * 1000;
    let best: TraceEvent | undefined;
    for (const task of tasks) {
      if (task.ts > t + slack) break;
      if (task.ts + (task.dur ?? 0) < t - slack) continue;
      // The longest candidate: a delivery outlasts the few small tasks around it.
      if (best === undefined || (task.dur ?? 0) > (best.dur ?? 0)) best = task;
    }
    if (best?.tdur === undefined)
      throw new Error(`no traced task ran the delivery at ${start.toFixed(1)} ms`);
    return best;
  });
  return { cpu: found.map((t) => (t.tdur as number) / 1000), tasks: found };
}

/** The task holding each `mittsync-delivery` mark (a check of {@link deliveryTaskCpuMs}). */
function markedTasks(events: readonly TraceEvent[]): TraceEvent[] {
  const tasks = events.filter((e) => e.ph === 'X' && e.name === 'ThreadControllerImpl::RunTask');
  return events
    .filter((e) => e.name === 'mittsync-delivery')
    .map((m) => {
      const t = tasks.find(
        (x) => x.pid === m.pid && x.tid === m.tid && x.ts <= m.ts && x.ts + (x.dur ?? 0) >= m.ts,
      );
      if (t === undefined) throw new Error('mark outside any task');
      return t;
    });
}

interface LiveQueryResult {
  /** p99 of the delivering tasks' thread time. */
  cpuP99: number;
  /** p99 of the wall time from the message handler's start to the callback's end. */
  wallP99: number;
}

/** Batches per trace of the live-query bench. */
const WINDOW = 260;

/**
 * 1,000-change live-query deliveries (520 batches, first 20 dropped): one tab watches, another
 * tab of the same browser (same worker) writes the batches, so the watching tab's main thread
 * only receives, as a tab showing others' edits does. Measured two ways: the wall time the
 * page sees, and the main thread's CPU time from a trace (see {@link deliveryTaskCpuMs}).
 */
async function liveQueryBatch(quick: boolean): Promise<LiveQueryResult> {
  const dist = await buildPage();
  const relay = await startRelay(dist);
  const browser = await launch();
  try {
    const context = await browser.newContext();
    const open = async () => {
      const p = await context.newPage();
      await p.goto(`${relay.httpUrl}/index.html`);
      await p.waitForFunction(() => 'mittsyncBench' in globalThis);
      return p;
    };
    const page = await open();
    const writer = await open();
    await settle(); // a running browser, as for the join
    const batches = quick ? 60 : 520;
    const size = 1000;
    // PEER_MATERIALIZE=1: the callback also reads every change (decoding all values).
    const materialize = process.env.PEER_MATERIALIZE === '1';
    await page.evaluate(
      ([m, n]) =>
        (globalThis as unknown as PageApi).mittsyncBench.watchBatches(
          'live',
          'bench-live',
          n as number,
          m as boolean,
        ),
      [materialize, size] as const,
    );
    // PEER_PROFILE=FILE: a CPU profile of the watching tab's main thread while batches arrive.
    const profile = process.env.PEER_PROFILE;
    const cdp = profile === undefined ? undefined : await context.newCDPSession(page);
    if (cdp !== undefined) {
      await cdp.send('Profiler.enable');
      await cdp.send('Profiler.setSamplingInterval', { interval: 100 });
      await cdp.send('Profiler.start');
    }
    // Cheap categories (tasks and marks), so the wall times stay true; only what the clock
    // match needs is kept (see deliveryTaskCpuMs). One trace per window of batches: a trace
    // of every process over all of them would overflow Chromium's trace buffer.
    const check = process.env.PEER_LQ_CHECK === '1';
    const wprof = process.env.PEER_WPROFILE;
    const ws = wprof === undefined ? undefined : await workerSession(browser);
    if (ws !== undefined) {
      await ws.send('Profiler.enable');
      await ws.send('Profiler.setSamplingInterval', { interval: 200 });
      await ws.send('Profiler.start');
    }
    const cpu: number[] = [];
    /** How long each batch's `transact` took the writing tab (no target; printed with PEER_DEBUG). */
    const writes: number[] = [];
    let matched = 0;
    for (let from = 0; from < batches; from += WINDOW) {
      const to = Math.min(batches, from + WINDOW);
      const trace = await traceEvents(
        browser,
        ['toplevel', 'blink.user_timing'],
        ['ThreadControllerImpl::RunTask', 'mittsync-'],
        async () => {
          // PEER_LQ_CHECK=1: also mark each delivery's task, to check that the clock finds the same.
          await page.evaluate((m) => (globalThis as unknown as PageApi).mittsyncBench.clockMark(m), check);
          for (let i = from; i < to; i++) {
            const t0 = performance.now();
            await writer.evaluate(
              ([b, n]) =>
                (globalThis as unknown as PageApi).mittsyncBench.writeBatch('live', 'bench-live', b, n),
              [i, size] as const,
            );
            writes.push(performance.now() - t0);
            await page.evaluate(
              (want) => (globalThis as unknown as PageApi).mittsyncBench.delivered(want),
              i + 1,
            );
          }
        },
      );
      const { starts } = await page.evaluate(() =>
        (globalThis as unknown as PageApi).mittsyncBench.liveStats(),
      );
      const found = deliveryTaskCpuMs(trace, starts.slice(from, to));
      cpu.push(...found.cpu);
      if (check) {
        const marked = markedTasks(trace);
        matched += found.tasks.filter((t, i) => t.ts === marked[i]?.ts).length;
      }
    }
    if (check)
      console.error(`check: ${matched} of ${cpu.length} tasks found by the clock hold their delivery's mark`);
    if (ws !== undefined && wprof !== undefined) {
      const r = await ws.send<{ profile: unknown }>('Profiler.stop', {}, 20000);
      writeFileSync(wprof, JSON.stringify(r?.profile));
    }
    if (cdp !== undefined && profile !== undefined) {
      const { profile: data } = await cdp.send('Profiler.stop');
      writeFileSync(profile, JSON.stringify(data));
    }
    const { samples } = await page.evaluate(() =>
      (globalThis as unknown as PageApi).mittsyncBench.liveStats(),
    );
    const wall = samples.slice(20).sort((a, b) => a - b);
    const cpuKept = cpu.slice(20).sort((a, b) => a - b);
    if (wall.length === 0) throw new Error('no live-query batch was delivered');
    if (process.env.PEER_DEBUG) {
      const line = (what: string, xs: number[]) =>
        `${what} p50 ${percentile(xs, 0.5).toFixed(2)} ms, p90 ${percentile(xs, 0.9).toFixed(2)} ms, max ${(xs[xs.length - 1] as number).toFixed(2)} ms`;
      console.error(
        `live_query_batch over ${wall.length} batches: ${line('wall', wall)}; ${line('cpu', cpuKept)}`,
      );
      const w = writes.slice(20).sort((a, b) => a - b);
      console.error(`the writer's ${size}-key transact (ack local): ${line('wall', w)}`);
    }
    await writer.evaluate(() => (globalThis as unknown as PageApi).mittsyncBench.close());
    await page.evaluate(() => (globalThis as unknown as PageApi).mittsyncBench.close());
    const round = (x: number) => Math.round(x * 100) / 100;
    return { cpuP99: round(percentile(cpuKept, 0.99)), wallP99: round(percentile(wall, 0.99)) };
  } finally {
    await browser.close();
    await relay.stop();
  }
}

/** Median over 3 freshly launched browsers of {@link BenchApi.idbFloor}. */
async function idbFloor(n: number): Promise<number> {
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

export const peerMetrics: Metric[] = [
  {
    name: 'join_100k_ms',
    unit: 'ms',
    description:
      'Headless Chromium joins a 100,000-key bucket (~100-byte values) from the real relay while a Node replica writes 500 ops/s to it: ms from createClient until the bucket is ready (the ready flag is committed with the last data); median of 5 joins, each in a freshly launched browser once it has finished starting up (its CPU use has settled; the app is opened in a running browser). --quick: 20,000 keys, one join.',
    target: { value: 1500, better: 'lower' },
    run: async ({ quick }) => (await joinBucket(quick ? 20_000 : 100_000, quick ? 1 : 5)).ms,
  },
  {
    name: 'join_1m_ms',
    unit: 'ms',
    description: 'The same join at 1,000,000 keys (--quick: 200,000), with 500 ops/s written meanwhile.',
    target: { value: 10_000, better: 'lower' },
    run: async ({ quick }) => (await joinMillion(quick)).ms,
  },
  {
    name: 'join_1m_heap_mb',
    unit: 'MB',
    description:
      'Peak memory of the SharedWorker during the 1,000,000-key join: JS heap plus ArrayBuffer backing stores (CDP Runtime.getHeapUsage usedSize + backingStorageSize, every 50 ms). Data size: 1M x (~100 B value + 8 B key + 24 B version) ~ 130 MB, so the target 2x is ~260 MB. --quick: 200,000 keys.',
    target: { value: 260, better: 'lower' },
    run: async ({ quick }) => (await joinMillion(quick)).heapMb,
  },
  {
    name: 'idb_floor_100k_ms',
    unit: 'ms',
    description:
      "No target, for reading the join figures: ms a freshly launched (and settled, as for the join) browser spends only in IndexedDB transactions writing 100,000 entries like the join's (same page records, 2,000 entries per transaction, building them not timed, no network, no sync); median of 3 launches. A join that stores in IndexedDB cannot be faster on this machine. --quick: 20,000.",
    run: ({ quick }) => idbFloor(quick ? 20_000 : 100_000),
  },
  {
    name: 'idb_floor_1m_ms',
    unit: 'ms',
    description: 'The same at 1,000,000 entries (--quick: 200,000).',
    run: ({ quick }) => idbFloor(quick ? 200_000 : 1_000_000),
  },
  {
    name: 'cold_start_100k_ms',
    unit: 'ms',
    description:
      'A freshly launched browser (same profile) opens a database holding a 100,000-key bucket: ms from createClient (SharedWorker start, IndexedDB open) until a first 50-row scan is answered; median of 5 launches. --quick: 20,000 keys.',
    target: { value: 300, better: 'lower' },
    run: ({ quick }) => coldStart(quick),
  },
  {
    name: 'live_query_batch_p99_ms',
    unit: 'ms',
    description:
      "Main-thread time for a live query to receive a 1,000-change batch (a transferred event batch: deserialize, decode, apply, callback): the CPU time of the main-thread task that delivers it (`tdur` of Chromium's RunTask trace event), p99 over 500 batches after 20 warm-up ones (the 5th slowest; the trace is read as a stream and filtered, as a whole it outgrows a JavaScript string); another tab of the same browser writes the batches, so the watching tab only receives. --quick: 40 batches.",
    target: { value: 1, better: 'lower' },
    run: async ({ quick }) => (await liveQuery(quick)).cpuP99,
  },
  {
    name: 'live_query_batch_wall_p99_ms',
    unit: 'ms',
    description:
      "No target, for reading the one above: the same deliveries' wall time, from the message handler's start to the callback's end (performance.now() in the page). Unlike CPU time it includes any time the OS ran other threads meanwhile: on this 2-core machine the relay, the worker and the browser process are busy with the same batch while it arrives.",
    run: async ({ quick }) => (await liveQuery(quick)).wallP99,
  },
];
