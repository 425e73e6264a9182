/**
 * The page `apps/bench` loads in headless Chromium (built with Vite, served by the relay):
 * each function runs one measurement with `performance.now()` inside the page.
 */
import { type Client, createClient, devToken, type ReplicationSpec } from '@mittsync/peer';
// The peer's own page records (not part of its API), so the IndexedDB floor stores what a join does.
import { emptyPage, mergeAndSplit, recordOf } from '../../../../packages/peer/src/worker/idb/pages';
import { benchKey, benchValue } from './data';

const relay = location.origin;
let current: Client | null = null;
let writer: Client | null = null;
const live = {
  delivered: 0,
  /** Wall ms of each full delivery... */
  samples: [] as number[],
  /** ...and when its handler started (`performance.now()`). */
  starts: [] as number[],
  /** Marks each full delivery's task too (to check how the harness finds them in a trace). */
  markDeliveries: false,
  waiters: [] as { n: number; done: () => void }[],
};
/** Keys changed by another replica and when they were observed, for write-to-observe. */
const seen: [key: string, at: number][] = [];

function open(name: string, sync?: { pageSize?: number; parallelRanges?: number }): Client {
  current = createClient({ relay, getToken: devToken(relay), name, ...(sync ? { sync } : {}) });
  return current;
}

/** Worker start-up milestones relative to `t0` (createClient; same wall clock), in order. */
async function workerSteps(c: Client, t0: number): Promise<string[]> {
  const start = performance.timeOrigin + t0;
  const { marks, storage } = await c.debug();
  const steps = Object.entries(marks)
    .map(([name, at]) => [name, Math.round(at - start)] as const)
    .sort((a, b) => a[1] - b[1])
    .map(([name, at]) => `${at} ${name}`);
  // Write amplification: entries stored in page records against entries committed.
  return storage === null ? steps : [...steps, `storage ${JSON.stringify(storage)}`];
}

const api = {
  /** Joins `bucket` on a fresh database: ms from createClient until ready (and committed). */
  async join(
    bucket: string,
    name: string,
    sync?: { pageSize?: number; parallelRanges?: number },
    spec?: ReplicationSpec,
  ) {
    const t0 = performance.now();
    const c = open(name, sync);
    const log: string[] = [];
    c.onStatus((s) => {
      const b = s.buckets[0];
      log.push(
        `${Math.round(performance.now() - t0)} ${s.connection} ${b?.phase} p${b?.progress.pages} e${b?.progress.entries} m${b?.mitt.ops}`,
      );
    });
    const info = await c.bucket(bucket, spec === undefined ? undefined : { spec }).whenReady();
    const ms = performance.now() - t0;
    return { ms, checkpoint: info.checkpoint, log: [...log, ...(await workerSteps(c, t0))] };
  },

  /** Reads `keys` through the current client (to verify a join). */
  async getMany(bucket: string, keys: string[]) {
    return (current as Client).bucket(bucket).getMany(keys);
  },

  /**
   * Follows `bucket` (joining it first), recording when each key another replica changed is
   * observed: `performance.timeOrigin + performance.now()`, Node's wall-clock scale.
   */
  async observe(bucket: string, name: string) {
    const b = open(name).bucket(bucket);
    await b.whenReady();
    await new Promise<void>((ready) => {
      let first = true;
      b.watch({ prefix: 'k' }, (r) => {
        if (first) {
          first = false;
          ready();
          return;
        }
        const at = performance.timeOrigin + performance.now();
        for (const c of r.changes) if (c.source === 'remote') seen.push([c.key, at]);
      });
    });
  },

  /** What {@link observe} recorded so far. */
  observed: () => seen.slice(),

  /** How much sooner than their commits live queries got remote changes (see `DebugInfo.earlyMs`). */
  earlyMs: async () => (await (current as Client).debug()).earlyMs,

  /** Opens a stored database and answers a first query: ms from createClient to the answer. */
  async coldStart(bucket: string, name: string) {
    const t0 = performance.now();
    const c = open(name);
    const rows = await c.bucket(bucket).scan({ limit: 50 });
    const ms = performance.now() - t0;
    return { ms, rows: rows.length, steps: await workerSteps(c, t0) };
  },

  /**
   * Watches `prefix` in `bucket` and records the main-thread time (message handler start to
   * callback end) of each delivery of at least `size` changes; another tab writes them (see
   * {@link writeBatch}), so this tab's main thread only receives.
   */
  async watchBatches(bucket: string, name: string, size: number, materialize = false) {
    const c = open(name);
    const b = c.bucket<{ n: number; text: string }>(bucket);
    let full = false;
    const hooked = c as unknown as { onEvents(bytes: Uint8Array): void };
    const orig = hooked.onEvents.bind(c);
    hooked.onEvents = (buf) => {
      full = false;
      const t = performance.now();
      orig(buf);
      const dt = performance.now() - t;
      if (!full) return;
      live.samples.push(dt);
      live.starts.push(t);
      if (live.markDeliveries) performance.mark('mittsync-delivery');
    };
    let first = true;
    await new Promise<void>((ready) => {
      b.watch({ prefix: 'w/' }, (r) => {
        if (first) {
          first = false;
          ready();
          return;
        }
        if (materialize) void r.changes.length;
        if (r.count >= size) {
          full = true;
          live.delivered++;
          const due = live.waiters.filter((w) => w.n <= live.delivered);
          live.waiters = live.waiters.filter((w) => w.n > live.delivered);
          // In a task of its own: the harness's reply (DevTools protocol) is not the delivery's work.
          for (const w of due) setTimeout(w.done, 0);
        }
      });
    });
  },

  /**
   * Resolves once `n` full batches were delivered: the harness awaits this instead of polling,
   * which would run on the same main thread as the deliveries it measures.
   */
  delivered(n: number): Promise<void> {
    if (live.delivered >= n) return Promise.resolve();
    return new Promise((done) => live.waiters.push({ n, done }));
  },

  /** Deliveries of full batches seen by {@link watchBatches}, and their times. */
  liveStats() {
    return { delivered: live.delivered, samples: live.samples.slice(), starts: live.starts.slice() };
  },

  /**
   * A user-timing mark for a trace: its `startTime` (page clock) and the trace event's `ts`
   * (trace clock) line the two clocks up.
   */
  clockMark(markDeliveries = false) {
    live.markDeliveries = markDeliveries;
    performance.mark('mittsync-clock');
  },

  /** Writes batch `i` of `size` keys under `w/` (from a tab other than the watching one). */
  async writeBatch(bucket: string, name: string, i: number, size: number) {
    writer ??= createClient({ relay, getToken: devToken(relay), name });
    const text = 'x'.repeat(80);
    await writer.bucket<{ n: number; text: string }>(bucket).transact((tx) => {
      for (let k = 0; k < size; k++) tx.put(`w/${String(k).padStart(5, '0')}`, { n: i, text });
    });
  },

  /**
   * No sync: writes `n` entries like the join's (~100-byte values, 2,000 per transaction, in
   * the peer's page records) straight into a fresh IndexedDB database, and returns the ms spent
   * in transactions only (building the records is not timed): what any join that stores in
   * IndexedDB spends at least, on this browser and machine.
   */
  async idbFloor(n: number) {
    const db = await new Promise<IDBDatabase>((resolve, reject) => {
      const req = indexedDB.open(`floor-${n}`, 1);
      req.onupgradeneeded = () => req.result.createObjectStore('pages');
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    let ms = 0;
    for (let start = 0; start < n; start += 2000) {
      const entries = [];
      for (let i = start; i < Math.min(n, start + 2000); i++) {
        const hlc = `${(1e12 + i).toString(16)}0000abcdefgh`;
        entries.push({ key: benchKey(i), hlc, seq: i + 1, value: benchValue(i) });
      }
      const records = mergeAndSplit(emptyPage(entries[0]?.key ?? ''), entries).map(
        (p) => [p.first, recordOf(p)] as const,
      );
      const t = performance.now();
      const tx = db.transaction('pages', 'readwrite', { durability: 'relaxed' });
      for (const [first, rec] of records) tx.objectStore('pages').put(rec, first);
      await new Promise<void>((resolve, reject) => {
        tx.oncomplete = () => resolve();
        tx.onabort = () => reject(tx.error);
      });
      ms += performance.now() - t;
    }
    db.close();
    return ms;
  },

  async close() {
    await current?.close();
    current = null;
    await writer?.close();
    writer = null;
  },
};

(globalThis as unknown as { mittsyncBench: typeof api }).mittsyncBench = api;
export type BenchApi = typeof api;
