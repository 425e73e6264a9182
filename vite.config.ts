import { playwright } from '@vitest/browser-playwright';
import { defineConfig } from 'vitest/config';
import { CHROMIUM_ARGS, findChromium } from './scripts/chromium.mjs';

// One vitest run covers every package; each project sees only its own environment.
export default defineConfig({
  test: {
    // Projects whose globs match nothing yet must not fail the run.
    passWithNoTests: true,
    projects: [
      {
        test: {
          name: 'core',
          environment: 'node',
          include: ['packages/core/src/**/*.test.ts'],
        },
      },
      {
        test: {
          name: 'relay',
          environment: 'node',
          include: ['packages/relay/src/**/*.test.ts'],
          testTimeout: 60_000,
          // better-sqlite3 and workerd are native: separate processes, not worker threads.
          pool: 'forks',
        },
      },
      {
        test: {
          name: 'peer-node',
          environment: 'node',
          include: ['packages/peer/src/**/*.node.test.ts'],
        },
      },
      {
        // Pre-bundled up front: a dependency discovered mid-run makes Vite reload the tests.
        optimizeDeps: { include: ['comlink', 'idb', 'msgpackr'] },
        test: {
          name: 'peer-browser',
          include: ['packages/peer/src/**/*.browser.test.ts'],
          // The real Node relay, started once per run; tests get its URL with inject('relayUrl').
          globalSetup: ['packages/peer/src/testing/relay-setup.ts'],
          testTimeout: 60_000,
          // Browser tests share one origin (locks, SharedWorkers): run files one at a time.
          fileParallelism: false,
          browser: {
            enabled: true,
            headless: true,
            provider: playwright({
              launchOptions: { executablePath: findChromium(), args: CHROMIUM_ARGS },
            }),
            instances: [{ browser: 'chromium' }],
          },
        },
      },
    ],
  },
});
