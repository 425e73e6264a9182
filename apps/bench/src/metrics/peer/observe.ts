import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright';
import { percentile } from '../../metric';
import { launchProfile, settle } from './browser';
import { buildPage, nodeReplica, type PageApi, sleep, startRelay } from './harness';

/**
 * Write-to-observe from a Node writer to a browser reader: write_observe's loop (200 writes a
 * second, a second of warm-up, 10 s of samples, --quick 3 s; a write not observed within 5 s of
 * the last one counts as infinite), with the reader in a page. The writer stamps each write
 * with `performance.timeOrigin + performance.now()` and the page each observation with the same
 * on its own clock; {@link clockOffset} lines the two clocks up.
 */

export interface ObserveResult {
  p50: number;
  p99: number;
}

/**
 * How far `page`'s `timeOrigin + now()` is ahead of this process's, in ms: from the 40 fastest
 * of 200 round trips to the page, the middle of each (the estimate is off by at most half the
 * fastest round trip, ~0.1-0.2 ms here).
 */
export async function clockOffset(page: Page): Promise<{ offset: number; error: number }> {
  const probes: { offset: number; rtt: number }[] = [];
  for (let i = 0; i < 200; i++) {
    const a = performance.timeOrigin + performance.now();
    const b = await page.evaluate(() => performance.timeOrigin + performance.now());
    const c = performance.timeOrigin + performance.now();
    probes.push({ offset: b - (a + c) / 2, rtt: c - a });
  }
  probes.sort((x, y) => x.rtt - y.rtt);
  const best = probes.slice(0, 40).map((p) => p.offset);
  best.sort((x, y) => x - y);
  return { offset: percentile(best, 0.5), error: (probes[0]?.rtt ?? Number.NaN) / 2 };
}

/**
 * write_observe's loop with a browser reader: `write(key, i)` writes on the Node side,
 * `observed()` reads what the page saw (`[key, at]`, page clock).
 */
export async function browserObserveLoop(
  page: Page,
  quick: boolean,
  write: (key: string, i: number) => unknown,
  observed: () => Promise<[string, number][]>,
): Promise<ObserveResult> {
  const before = await clockOffset(page);
  const rate = 200;
  const total = rate * (quick ? 3 : 10);
  const warmup = rate;
  const sentAt = new Map<string, number>();
  const start = performance.now();
  for (let i = 0; i < warmup + total; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const key = `k${i}`;
    if (i >= warmup) sentAt.set(key, performance.timeOrigin + performance.now());
    await write(key, i);
  }
  // Polled only now: polling during the loop would run on the observing page's main thread.
  const deadline = performance.now() + 5000;
  let seen = await observed();
  while (seen.filter(([k]) => sentAt.has(k)).length < total && performance.now() < deadline) {
    await sleep(100);
    seen = await observed();
  }
  const after = await clockOffset(page);
  const offset = (before.offset + after.offset) / 2;
  if (process.env.PEER_DEBUG)
    console.error(
      `clock offset page-node ${before.offset.toFixed(3)} ms before, ${after.offset.toFixed(3)} ms after (fastest round trip/2 ${before.error.toFixed(3)} ms)`,
    );
  const latencies: number[] = [];
  for (const [key, at] of seen) {
    const t = sentAt.get(key);
    if (t === undefined) continue;
    sentAt.delete(key); // the first observation of a write counts
    latencies.push(at - offset - t);
  }
  latencies.sort((x, y) => x - y);
  while (latencies.length < total) latencies.push(Number.POSITIVE_INFINITY);
  const round = (x: number) => Math.round(x * 100) / 100;
  return { p50: round(percentile(latencies, 0.5)), p99: round(percentile(latencies, 0.99)) };
}

let observeRun: Promise<ObserveResult> | undefined;

/** A Node replica puts through the relay; our client in a page observes it. */
export function writeObserveBrowser(quick: boolean): Promise<ObserveResult> {
  observeRun ??= (async () => {
    const dist = await buildPage();
    const relay = await startRelay(dist);
    // A profile on disk, as for the joins: the reader stores what it observes in IndexedDB.
    const dir = mkdtempSync(join(tmpdir(), 'mittsync-observe-profile-'));
    const context = await launchProfile(dir);
    try {
      const writer = await nodeReplica(relay, 'writer');
      try {
        const bucket = 'observe';
        await writer.openBucket(bucket);
        await writer.whenReady(bucket);
        const page = context.pages()[0] ?? (await context.newPage());
        await page.goto(`${relay.httpUrl}/index.html`);
        await page.waitForFunction(() => 'mittsyncBench' in globalThis);
        await page.evaluate(
          (b) => (globalThis as unknown as PageApi).mittsyncBench.observe(b, 'bench-observe'),
          bucket,
        );
        await settle();
        const result = await browserObserveLoop(
          page,
          quick,
          (key, i) => writer.put(bucket, key, { i, at: Date.now() }),
          () => page.evaluate(() => (globalThis as unknown as PageApi).mittsyncBench.observed()),
        );
        if (process.env.PEER_DEBUG) {
          // The IndexedDB commits live queries no longer wait for (Replica.onApplying).
          const early = await page.evaluate(() => (globalThis as unknown as PageApi).mittsyncBench.earlyMs());
          early.sort((x, y) => x - y);
          console.error(
            `live queries ahead of their commits: p50 ${percentile(early, 0.5).toFixed(2)} ms, p99 ${percentile(early, 0.99).toFixed(2)} ms over ${early.length} commits`,
          );
        }
        return result;
      } finally {
        await writer.close();
      }
    } finally {
      await context.close();
      rmSync(dir, { recursive: true, force: true });
      await relay.stop();
    }
  })();
  return observeRun;
}
