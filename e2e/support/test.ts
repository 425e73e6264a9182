import { type BrowserContext, test as base, expect } from '@playwright/test';
import { seedItem } from '../../apps/demo/src/inventory';
import { Demo, type DemoParams, type RowsDigest } from './demo';
import { FaultProxy } from './fault-proxy';
import { relayDigest, seedRelay } from './relay-data';
import { RelayProcess, type RelayRuntime } from './relay-process';

export { expect };

/** The 100k-row bucket of `relayData: 'seeded'` (the demo's inventory, `sku-000000` onwards). */
export const SEEDED = { bucket: 'inventory-100k', rows: 100_000 } as const;

interface Options {
  /**
   * The relay the test runs against: `node` (the default), or `edge` (workerd), which the
   * `chromium-edge` project of playwright.config.ts sets for the specs it runs.
   */
  relayRuntime: RelayRuntime;
  /**
   * What the test's relay starts with: nothing, or the 100k-row bucket `SEEDED.bucket` (a
   * copy of a template seeded once per worker; then `bucket` is that bucket).
   */
  relayData: 'empty' | 'seeded';
}

interface WorkerFixtures {
  /** Removes the seeded templates (if this worker made any) when the worker ends. */
  // biome-ignore lint/suspicious/noConfusingVoidType: a Playwright fixture that provides nothing is typed void
  seededCleanup: void;
}

/**
 * A stopped relay's data directory holding `SEEDED.bucket`, written once per worker process and
 * runtime on first use: tests start their relay on a copy of it instead of seeding 100k rows each.
 */
const seededTemplates = new Map<RelayRuntime, Promise<RelayProcess>>();

function seededDir(runtime: RelayRuntime): Promise<string> {
  let made = seededTemplates.get(runtime);
  if (made === undefined) {
    made = (async () => {
      const seeder = await RelayProcess.start({ runtime });
      await seedRelay(seeder, SEEDED.bucket, SEEDED.rows, (n) => seedItem(n, 'seeder'));
      await seeder.stop();
      return seeder;
    })();
    seededTemplates.set(runtime, made);
  }
  return made.then((r) => r.dataDir);
}

interface Fixtures {
  /** The real relay (CLI, dev mode, serving the demo) on its own port and data directory. */
  relay: RelayProcess;
  /** A fault-injecting WebSocket proxy in front of `relay` (started on first use). */
  faults: FaultProxy;
  /** A new browser context: another device, with its own IndexedDB and workers. */
  newDevice: (label: string) => Promise<BrowserContext>;
  /** Opens a demo tab in `device` on the test's relay. */
  openDemo: (device: BrowserContext, params: DemoParams, label?: string) => Promise<Demo>;
  /** A bucket name unique to this test. */
  bucket: string;
}

export const test = base.extend<Fixtures & Options, WorkerFixtures>({
  relayData: ['empty', { option: true }],
  relayRuntime: ['node', { option: true }],
  seededCleanup: [
    // biome-ignore lint/correctness/noEmptyPattern: Playwright reads the fixture's dependencies from this pattern
    async ({}, use) => {
      await use();
      const made = [...seededTemplates.values()];
      seededTemplates.clear();
      for (const m of made) (await m.catch(() => undefined))?.removeData();
    },
    { scope: 'worker', auto: true },
  ],
  relay: async ({ relayData, relayRuntime }, use, testInfo) => {
    const relay = await RelayProcess.start({
      runtime: relayRuntime,
      ...(relayData === 'seeded' ? { template: await seededDir(relayRuntime) } : {}),
    });
    try {
      await use(relay);
    } finally {
      if (testInfo.status !== testInfo.expectedStatus) {
        await testInfo.attach('relay.log', { body: relay.output, contentType: 'text/plain' });
      }
      await relay.dispose();
    }
  },
  faults: async ({ relay }, use, testInfo) => {
    const proxy = await FaultProxy.start(relay, 1 + testInfo.repeatEachIndex);
    try {
      await use(proxy);
    } finally {
      await testInfo.attach('proxy-stats.json', {
        body: JSON.stringify(proxy.stats, null, 2),
        contentType: 'application/json',
      });
      await proxy.close();
    }
  },
  newDevice: async ({ browser }, use) => {
    const contexts: BrowserContext[] = [];
    await use(async () => {
      const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
      contexts.push(ctx);
      return ctx;
    });
    for (const ctx of contexts) await ctx.close().catch(() => undefined);
  },
  openDemo: async ({ relay }, use, testInfo) => {
    const demos: Demo[] = [];
    await use(async (device, params, label) => {
      const demo = await Demo.open(device, relay.httpUrl, params, label);
      demos.push(demo);
      return demo;
    });
    if (testInfo.status !== testInfo.expectedStatus) {
      for (const [i, d] of demos.entries()) {
        await testInfo.attach(`console-${i}-${d.label.replace(/\W+/g, '-')}.txt`, {
          body: d.console.join('\n'),
          contentType: 'text/plain',
        });
      }
    }
  },
  bucket: async ({ relayData }, use, testInfo) => {
    await use(relayData === 'seeded' ? SEEDED.bucket : `e2e-${testInfo.testId.slice(0, 8)}`);
  },
});

/** Seeds `rows` inventory rows into `bucket` from Node (fast: large batches, acked by the relay). */
export function seed(relay: RelayProcess, bucket: string, rows: number): Promise<void> {
  return seedRelay(relay, bucket, rows, (n) => seedItem(n, 'seeder'));
}

/** Waits until the tab's bucket has no unacknowledged local writes. */
export async function drained(demo: Demo, timeout = 60_000): Promise<void> {
  await expect
    .poll(
      async () => {
        const s = await demo.bucketStatus();
        return s === undefined ? 'no bucket' : `${s.phase}/${s.pending}`;
      },
      { timeout, message: `${demo.label}: outbox drained and ready` },
    )
    .toBe('ready/0');
}

/**
 * Quiescence: every tab's outbox is empty, then every replica (a full scan) and every table
 * (its live query) holds exactly what the relay holds. Returns the relay's digest.
 */
export async function expectConverged(
  relay: RelayProcess,
  bucket: string,
  demos: Demo[],
  timeout = 60_000,
): Promise<RowsDigest> {
  await Promise.all(demos.map((d) => drained(d, timeout)));
  const want = await relayDigest(relay, bucket);
  // Each page digests in its own renderer: in parallel.
  await Promise.all(
    demos.map(async (d) => {
      await expect
        .poll(() => d.digest(), { timeout, message: `${d.label}: replica equals the relay` })
        .toEqual(want);
      await expect
        .poll(() => d.viewDigest(), { timeout, message: `${d.label}: table equals the relay` })
        .toEqual(want);
    }),
  );
  return want;
}
