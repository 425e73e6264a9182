#!/usr/bin/env node
// Checks that docs/demo.md's table of end-to-end tests lists every spec in e2e/ with the number
// of tests it runs, as Playwright counts them (`playwright test --list`), and nothing else.
//   node scripts/check-e2e-docs.mjs
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const DOC = 'docs/demo.md';

/**
 * @typedef {{ file?: string, specs?: { tests: unknown[] }[], suites?: Suite[] }} Suite
 * @param {Suite} suite
 * @returns {number}
 */
function countTests(suite) {
  let n = 0;
  for (const spec of suite.specs ?? []) n += spec.tests.length;
  for (const child of suite.suites ?? []) n += countTests(child);
  return n;
}

// The suite as `npm test` runs it (the screenshots spec only runs when asked for).
const env = { ...process.env };
delete env.MITTSYNC_SCREENSHOTS;
const listing = JSON.parse(
  execFileSync(join(root, 'node_modules', '.bin', 'playwright'), ['test', '--list', '--reporter=json'], {
    cwd: root,
    env,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  }),
);
/** @type {Map<string, number>} spec name (file name without `.spec.ts`) -> tests */
const actual = new Map();
for (const suite of /** @type {Suite[]} */ (listing.suites)) {
  const name = (suite.file ?? '').replace(/^.*\//, '').replace(/\.spec\.ts$/, '');
  actual.set(name, (actual.get(name) ?? 0) + countTests(suite));
}

// Rows of the table: | `spec` | tests | scenario |
/** @type {Map<string, number>} */
const documented = new Map();
for (const line of readFileSync(join(root, DOC), 'utf8').split('\n')) {
  const m = /^\|\s*`([\w-]+)`\s*\|\s*(\d+)\s*\|/.exec(line);
  if (m?.[1] !== undefined) documented.set(m[1], Number(m[2]));
}

const problems = [];
for (const [name, tests] of actual) {
  const doc = documented.get(name);
  if (doc === undefined) problems.push(`e2e/${name}.spec.ts (tests: ${tests}) is missing from the table`);
  else if (doc !== tests) problems.push(`${name}: the table says ${doc} tests, the spec runs ${tests}`);
}
for (const name of documented.keys()) {
  if (!actual.has(name)) problems.push(`${name} is in the table but runs no test in e2e/`);
}
if (problems.length > 0) {
  console.error(`${DOC}, end-to-end tests:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
const total = [...actual.values()].reduce((a, b) => a + b, 0);
console.log(`${DOC} lists all ${total} end-to-end tests of ${actual.size} specs`);
