import { register } from 'node:module';
import { defineConfig } from '@playwright/test';
import { CHROMIUM_ARGS, findChromium } from './scripts/chromium.mjs';

// End-to-end scenarios: real browsers against the real relay. Each test starts its own relay
// process (CLI, dev mode, serving the built demo) on a free port and a temporary directory,
// so tests can SIGKILL and restart it without touching each other.
//
// `chromium` runs every scenario against the Node relay; `chromium-edge` runs the ones named in
// EDGE_SPECS again against the edge relay (the Worker and its Durable Objects on workerd,
// `mittsync edge`): the `relayRuntime` option of e2e/support/test.ts picks the relay.
// The workspace's @mittsync/* packages resolve to their TypeScript sources (their "source"
// export condition) in the runner and in its workers, which load this file too.
register('./packages/relay/bin/source-condition.mjs', import.meta.url);

const EDGE_SPECS = ['join-under-load.spec.ts', 'offline-merge.spec.ts'];

export default defineConfig<{ relayRuntime: 'node' | 'edge' }>({
  testDir: 'e2e',
  // The README's screenshots are regenerated on request only (MITTSYNC_SCREENSHOTS=1).
  testIgnore: process.env.MITTSYNC_SCREENSHOTS ? [] : ['**/screenshots.spec.ts'],
  globalSetup: './e2e/global-setup.ts',
  // Two cores: one test at a time, each driving several browser contexts.
  workers: 1,
  fullyParallel: false,
  forbidOnly: !!process.env.CI,
  retries: 0,
  timeout: 180_000,
  expect: { timeout: 30_000 },
  reporter: process.env.CI ? [['list'], ['html', { open: 'never' }]] : [['list']],
  outputDir: 'test-results',
  use: {
    // No screencast in traces: on two cores, filming four tabs slows the pages it films.
    trace: { mode: 'retain-on-failure', screenshots: false, snapshots: true, sources: true },
    screenshot: 'only-on-failure',
    viewport: { width: 1400, height: 900 },
    launchOptions: {
      // Debian's Chromium (or an override) when there is one; otherwise Playwright's own.
      ...(findChromium() === undefined ? {} : { executablePath: findChromium() }),
      args: CHROMIUM_ARGS,
    },
  },
  projects: [
    { name: 'chromium', use: { browserName: 'chromium' } },
    {
      name: 'chromium-edge',
      testMatch: EDGE_SPECS,
      use: { browserName: 'chromium', relayRuntime: 'edge' },
    },
  ],
});
