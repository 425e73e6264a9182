import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright';
import type { AutomergePageApi } from '../../compare-page/automerge-page';
import { launchProfile, settle } from '../peer/browser';
import { automergeBackgroundWriter } from './automerge-writer';
import { startServer } from './child';
import { comparePage } from './page';
import { bounded } from './scope';

/**
 * Automerge on our join workload, in the same harness as ours and Yjs's: an automerge-repo
 * sync server in a child process, a Node writer in this process, the reader in headless
 * Chromium on a profile directory.
 */

type Bench = AutomergePageApi['automergeBench'];

/** Calls `automergeBench[method](...args)` in `page`. */
function call<K extends keyof Bench>(
  page: Page,
  method: K,
  ...args: Parameters<Bench[K]>
): Promise<Awaited<ReturnType<Bench[K]>>> {
  return page.evaluate(
    ([m, a]) =>
      (
        globalThis as unknown as { automergeBench: Record<string, (...x: unknown[]) => unknown> }
      ).automergeBench[m]?.(...a),
    [method, args] as [string, unknown[]],
  ) as Promise<Awaited<ReturnType<Bench[K]>>>;
}

export interface AutomergeJoinResult {
  /** Median join. */
  ms: number;
  /** The writer's achieved ops/s while the joins ran (it is asked for 500). */
  writerOps: number;
  /** The mean ms one of the writer's changes (5 sets) took in `handle.change`. */
  msPerChange: number;
  /** ms the server took to build the document in one change. */
  fillMs: number;
}

/**
 * `runs` joins of a document of `n` keys (built in the server in one change) while a Node repo
 * writes to it at up to 500 ops/s (see {@link automergeBackgroundWriter}), each in a freshly
 * launched, settled browser on an empty profile; the median. Each join is checked afterwards
 * by a repo on its IndexedDB database alone.
 */
export function automergeJoin(n: number, runs: number, timeoutMs: number): Promise<AutomergeJoinResult> {
  return bounded(`the Automerge ${n}-key join`, timeoutMs, async (scope) => {
    const pageUrl = await comparePage();
    const server = await startServer('automerge-server.ts');
    scope.defer(() => server.stop());
    const { url, ms: fillMs } = await server.request<{ url: string; ms: number }>('fill', { n });
    const t0 = performance.now();
    const writer = await automergeBackgroundWriter(server.wsUrl, url, n, 500);
    if (process.env.PEER_DEBUG)
      console.error(
        `automerge: filled in ${fillMs} ms, writer in sync after ${Math.round(performance.now() - t0)} ms`,
      );
    scope.defer(() => writer.stop());
    const times: number[] = [];
    for (let run = 0; run < runs; run++) {
      const dir = mkdtempSync(join(tmpdir(), 'mittsync-automerge-profile-'));
      try {
        const context = await launchProfile(dir);
        scope.defer(() => context.close());
        const page = context.pages()[0] ?? (await context.newPage());
        await page.goto(`${pageUrl}/automerge.html`);
        await page.waitForFunction(() => 'automergeBench' in globalThis);
        await call(page, 'ready');
        await settle();
        const heads = writer.mark();
        const db = `automerge-join-${run}`;
        const r = await call(page, 'join', server.wsUrl, db, url, n, heads);
        if (process.env.PEER_DEBUG)
          console.error(`automerge join ${Math.round(r.ms)} ms: ${r.log.join(', ')}`);
        const v = await call(page, 'verify', db, url, n, heads);
        if (!v.ok) throw new Error(`the Automerge join's IndexedDB does not hold the join: ${v.detail}`);
        times.push(r.ms);
        await call(page, 'close');
        await context.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    const { opsPerSecond, msPerChange } = await writer.stop();
    times.sort((a, b) => a - b);
    return {
      ms: Math.round(times[Math.floor(times.length / 2)] as number),
      writerOps: Math.round(opsPerSecond * 10) / 10,
      msPerChange: Math.round(msPerChange),
      fillMs,
    };
  });
}
