import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { playwright } from '@vitest/browser-playwright';
import { defaultClientConditions, defaultServerConditions } from 'vite';
import { defineConfig } from 'vitest/config';
import { CHROMIUM_ARGS, findChromium } from './scripts/chromium.mjs';

// The browser tests' profile directory (see the peer-browser project), removed when the run ends.
const browserProfile = mkdtempSync(join(tmpdir(), 'mittsync-vitest-profile-'));
process.on('exit', () => rmSync(browserProfile, { recursive: true, force: true }));

// The browser tests' page is served on this port, so the dev relay they use (see
// vitest-relay-setup.ts) can accept this one page origin for dev tokens, and no other.
const browserPort = await new Promise<number>((resolve, reject) => {
  const srv = createServer();
  srv.once('error', reject);
  srv.listen(0, 'localhost', () => {
    const { port } = srv.address() as { port: number };
    srv.close(() => resolve(port));
  });
});
process.env.MITTSYNC_TEST_PAGE_ORIGIN = `http://localhost:${browserPort}`;

// The workspace's @mittsync/* packages resolve to their TypeScript sources (their "source"
// export condition) in every project, in the browser and in Node, not to their dist/ builds.
const sources = {
  resolve: { conditions: ['source', ...defaultClientConditions] },
  ssr: { resolve: { conditions: ['source', ...defaultServerConditions], externalConditions: ['source'] } },
  // Where vitest runs global setups (the relay the browser tests use).
  environments: {
    __vitest__: {
      resolve: { conditions: ['source', ...defaultServerConditions], externalConditions: ['source'] },
    },
  },
};

// One vitest run covers every package; each project sees only its own environment.
export default defineConfig({
  test: {
    // Projects whose globs match nothing yet must not fail the run.
    passWithNoTests: true,
    projects: [
      {
        ...sources,
        test: {
          name: 'core',
          environment: 'node',
          include: ['packages/core/src/**/*.test.ts'],
        },
      },
      {
        ...sources,
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
        ...sources,
        test: {
          name: 'peer-node',
          environment: 'node',
          include: ['packages/peer/src/**/*.node.test.ts', 'packages/react/src/**/*.node.test.ts'],
        },
      },
      {
        ...sources,
        // Pre-bundled up front: a dependency discovered mid-run makes Vite reload the tests.
        optimizeDeps: {
          include: [
            'comlink',
            'idb',
            'msgpackr',
            'react',
            'react/jsx-runtime',
            'react/jsx-dev-runtime',
            'react-dom/client',
          ],
        },
        // The React bindings' tests are TSX: the automatic runtime, as packages/react's tsconfig says.
        esbuild: { jsx: 'automatic' },
        test: {
          // The browser peer's tests and the React bindings' tests: one browser, one origin.
          name: 'peer-browser',
          include: ['packages/peer/src/**/*.browser.test.ts', 'packages/react/src/**/*.browser.test.tsx'],
          // The real Node relay, started once per run; tests get its URL with inject('relayUrl').
          globalSetup: ['packages/relay/src/testing/vitest-relay-setup.ts'],
          testTimeout: 60_000,
          // Browser tests share one origin (locks, SharedWorkers): run files one at a time.
          fileParallelism: false,
          browser: {
            enabled: true,
            headless: true,
            provider: playwright({
              launchOptions: { executablePath: findChromium(), args: CHROMIUM_ARGS },
              // A profile on disk: Playwright's default contexts are off the record, and their
              // IndexedDB lives in memory. A fresh directory per run, so no run sees another's data.
              persistentContext: browserProfile,
            }),
            instances: [{ browser: 'chromium' }],
            api: { port: browserPort, strictPort: true },
          },
        },
      },
    ],
  },
});
