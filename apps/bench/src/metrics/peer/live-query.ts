import { writeFileSync } from 'node:fs';
import { percentile } from '../../metric';
import { launch, settle, workerSession } from './browser';
import { buildPage, type PageApi, startRelay } from './harness';
import { deliveryTaskCpuMs, markedTasks, traceEvents } from './trace';

export interface LiveQueryResult {
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

let liveRun: Promise<LiveQueryResult> | undefined;
export const liveQuery = (quick: boolean) => {
  liveRun ??= liveQueryBatch(quick);
  return liveRun;
};
