import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright';
import type { YjsPageApi } from '../../compare-page/yjs-page';
import { launchProfile, settle } from '../peer/browser';
import { browserObserveLoop, type ObserveResult } from '../peer/observe';
import { startServer } from './child';
import { comparePage } from './page';
import { bounded, type Scope } from './scope';
import { yjsBackgroundWriter, yjsClient } from './yjs-writer';

/**
 * Yjs on our workloads, in the same harness: the stock y-websocket server in a child process
 * (as our relay runs), a Node writer in this process, the reader in headless Chromium on a
 * profile directory (IndexedDB on disk), each browser settled before it is timed.
 */

type Bench = YjsPageApi['yjsBench'];

/** Calls `yjsBench[method](...args)` in `page`. */
function call<K extends keyof Bench>(
  page: Page,
  method: K,
  ...args: Parameters<Bench[K]>
): Promise<Awaited<ReturnType<Bench[K]>>> {
  return page.evaluate(
    ([m, a]) =>
      (globalThis as unknown as { yjsBench: Record<string, (...x: unknown[]) => unknown> }).yjsBench[m]?.(
        ...a,
      ),
    [method, args] as [string, unknown[]],
  ) as Promise<Awaited<ReturnType<Bench[K]>>>;
}

/** A freshly launched browser on profile `dir` with the compare page's Yjs side loaded. */
async function openPage(
  scope: Scope,
  dir: string,
  pageUrl: string,
): Promise<{ context: BrowserContext; page: Page }> {
  const context = await launchProfile(dir);
  scope.defer(() => context.close());
  const page = context.pages()[0] ?? (await context.newPage());
  await page.goto(`${pageUrl}/yjs.html`);
  await page.waitForFunction(() => 'yjsBench' in globalThis);
  return { context, page };
}

export interface YjsJoinResult {
  ms: number;
  /** The writer's achieved ops/s over the runs. */
  writerOps: number;
}

/**
 * `runs` joins of an `n`-key `Y.Map` (filled in the server in one transaction) while a Node
 * client writes 500 ops/s to it, each in a freshly launched browser on an empty profile; the
 * median. Each join is checked afterwards against what IndexedDB holds.
 */
export function yjsJoin(n: number, runs: number, timeoutMs: number): Promise<YjsJoinResult> {
  return bounded(`the Yjs ${n}-key join`, timeoutMs, async (scope) => {
    const pageUrl = await comparePage();
    const server = await startServer('yjs-server.ts');
    scope.defer(() => server.stop());
    await server.request('fill', { doc: 'join', n });
    const writer = await yjsBackgroundWriter(server.wsUrl, 'join', n, 500);
    scope.defer(() => writer.stop());
    const times: number[] = [];
    for (let run = 0; run < runs; run++) {
      const dir = mkdtempSync(join(tmpdir(), 'mittsync-yjs-profile-'));
      try {
        const { context, page } = await openPage(scope, dir, pageUrl);
        await settle(); // as our join: the app opened in a running browser
        const mark = writer.mark();
        const db = `yjs-join-${run}`;
        const r = await call(page, 'join', server.wsUrl, 'join', db, n, mark);
        if (process.env.PEER_DEBUG) console.error(`yjs join ${Math.round(r.ms)} ms: ${r.log.join(', ')}`);
        const v = await call(page, 'verify', db, n, mark);
        if (!v.ok) throw new Error(`the Yjs join's IndexedDB does not hold the join: ${v.detail}`);
        if (process.env.PEER_DEBUG) console.error(`yjs IndexedDB: ${v.updates} updates, ${v.bytes} bytes`);
        times.push(r.ms);
        await call(page, 'close');
        await context.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    const writerOps = await writer.stop();
    times.sort((a, b) => a - b);
    return {
      ms: Math.round(times[Math.floor(times.length / 2)] as number),
      writerOps: Math.round(writerOps),
    };
  });
}

/**
 * A browser joins an `n`-key document (no writer), closes; then 5 freshly launched browsers on
 * the same profile each open the stored document: ms until its first 50 keys are read (as ours
 * answers a 50-row scan); the median.
 */
export function yjsColdStart(n: number, timeoutMs: number): Promise<number> {
  return bounded(`the Yjs ${n}-key cold start`, timeoutMs, async (scope) => {
    const pageUrl = await comparePage();
    const server = await startServer('yjs-server.ts');
    scope.defer(() => server.stop());
    await server.request('fill', { doc: 'cold', n });
    const dir = mkdtempSync(join(tmpdir(), 'mittsync-yjs-cold-'));
    scope.defer(() => rmSync(dir, { recursive: true, force: true }));
    const db = 'yjs-cold';
    const first = await openPage(scope, dir, pageUrl);
    await call(first.page, 'join', server.wsUrl, 'cold', db, n, { client: 0, clock: 0 });
    await call(first.page, 'close');
    await first.context.close();
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const { context, page } = await openPage(scope, dir, pageUrl);
      const r = await call(page, 'coldStart', db, n);
      if (r.rows !== 50 || r.keys !== n)
        throw new Error(`the Yjs cold start read ${r.rows} of 50 rows, ${r.keys} of ${n} keys`);
      times.push(r.ms);
      await call(page, 'close');
      await context.close();
    }
    times.sort((a, b) => a - b);
    return Math.round((times[2] as number) * 10) / 10;
  });
}

let observeRun: Promise<ObserveResult> | undefined;

/** write_observe's loop from a Node Yjs client through the y-websocket server to a page. */
export function yjsWriteObserve(quick: boolean, timeoutMs: number): Promise<ObserveResult> {
  observeRun ??= bounded('the Yjs write-to-observe run', timeoutMs, async (scope) => {
    const pageUrl = await comparePage();
    const server = await startServer('yjs-server.ts');
    scope.defer(() => server.stop());
    const writer = await yjsClient(server.wsUrl, 'observe');
    scope.defer(() => writer.close());
    const dir = mkdtempSync(join(tmpdir(), 'mittsync-yjs-observe-'));
    scope.defer(() => rmSync(dir, { recursive: true, force: true }));
    const { page } = await openPage(scope, dir, pageUrl);
    await call(page, 'observe', server.wsUrl, 'observe', 'yjs-observe');
    await settle();
    return browserObserveLoop(
      page,
      quick,
      (key, i) => writer.map.set(key, { i, at: Date.now() }),
      () => call(page, 'observed'),
    );
  });
  return observeRun;
}
