import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext } from 'playwright';
import { launchProfile } from './browser';
import { buildPage, type PageApi, seed, startRelay } from './harness';

/**
 * A browser opens a stored 100k-key database and answers a first query: median of 5 starts,
 * each in a freshly launched browser on the same profile (no worker or connection left over).
 */
export async function coldStart(quick: boolean): Promise<number> {
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
