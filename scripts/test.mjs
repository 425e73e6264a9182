#!/usr/bin/env node
// The one test command (`npm test`): every step in order, stopping at the first failure.
//   node scripts/test.mjs               all steps
//   node scripts/test.mjs --skip-e2e    all but the Playwright end-to-end tests
//   node scripts/test.mjs --only lint   one step (chromium, lint, typecheck, docs, unit, pack, sim, e2e)
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureChromium } from './chromium.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
/** @param {string} name */
const bin = (name) => join(root, 'node_modules', '.bin', name);

/**
 * @typedef {{ name: string, title: string, run: () => void, when?: () => string | undefined }} Step
 * `when` returns a reason to skip the step, or undefined to run it.
 */

/** @param {string} cmd @param {string[]} args */
function sh(cmd, args) {
  console.log(`$ ${[cmd.startsWith(root) ? cmd.slice(root.length + 1) : cmd, ...args].join(' ')}`);
  const result = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (result.error) throw result.error;
  if (result.status !== 0) {
    throw new Error(`exited with ${result.status ?? `signal ${result.signal}`}`);
  }
}

/** @type {Step[]} */
const steps = [
  {
    name: 'chromium',
    title: 'Chromium for browser tests',
    run: () => console.log(`using ${ensureChromium()}`),
  },
  {
    name: 'lint',
    title: 'Biome (format + lint), the e2e table of docs/demo.md',
    run: () => {
      sh(bin('biome'), ['check', '.']);
      sh(process.execPath, [join(root, 'scripts', 'check-e2e-docs.mjs')]);
    },
  },
  { name: 'typecheck', title: 'TypeScript (tsc -b)', run: () => sh(bin('tsc'), ['-b']) },
  {
    name: 'docs',
    title: 'API reference from the TSDoc comments (TypeDoc into docs/api, not committed)',
    run: () => sh(bin('typedoc'), []),
  },
  { name: 'unit', title: 'Vitest (all projects)', run: () => sh(bin('vitest'), ['run']) },
  {
    name: 'pack',
    title: 'Packages: build, npm pack, install into a fresh project, sync with the packed relay',
    run: () => sh(process.execPath, [join(root, 'scripts', 'pack-test.mjs')]),
  },
  {
    name: 'sim',
    title: 'Simulator, 300 seeds',
    run: () => sh('npm', ['run', 'sim', '--', '--seeds', '300']),
  },
  {
    name: 'e2e',
    title: 'Playwright end-to-end',
    when: () => (existsSync(join(root, 'playwright.config.ts')) ? undefined : 'no playwright.config.ts'),
    run: () => sh(bin('playwright'), ['test']),
  },
];

/** @param {string[]} argv */
function parseArgs(argv) {
  const opts = { skipE2e: false, only: /** @type {string | undefined} */ (undefined) };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--skip-e2e') opts.skipE2e = true;
    else if (arg === '--only') opts.only = argv[++i];
    else if (arg?.startsWith('--only=')) opts.only = arg.slice('--only='.length);
    else if (arg === '--help' || arg === '-h') {
      console.log(
        `usage: node scripts/test.mjs [--skip-e2e] [--only <${steps.map((s) => s.name).join('|')}>]`,
      );
      process.exit(0);
    } else {
      console.error(`unknown argument: ${arg}`);
      process.exit(2);
    }
  }
  if (opts.only !== undefined && !steps.some((s) => s.name === opts.only)) {
    console.error(`--only expects one of: ${steps.map((s) => s.name).join(', ')}`);
    process.exit(2);
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
/** @param {number} ms */
const seconds = (ms) => `${(ms / 1000).toFixed(1)}s`;
const started = Date.now();
let failed = false;

for (const step of steps) {
  if (opts.only !== undefined && step.name !== opts.only) continue;
  const skip = opts.skipE2e && step.name === 'e2e' ? '--skip-e2e' : step.when?.();
  console.log(`\n=== ${step.name}: ${step.title}${skip ? ` (skipped: ${skip})` : ''}`);
  if (skip) continue;
  const stepStarted = Date.now();
  try {
    step.run();
    console.log(`--- ${step.name} ok in ${seconds(Date.now() - stepStarted)}`);
  } catch (err) {
    console.error(
      `\n--- ${step.name} FAILED after ${seconds(Date.now() - stepStarted)}: ${err instanceof Error ? err.message : err}`,
    );
    failed = true;
    break;
  }
}

console.log(`\n=== ${failed ? 'FAILED' : 'all steps passed'} in ${seconds(Date.now() - started)}`);
process.exit(failed ? 1 : 0);
