// Finds (and on a bare Debian machine, installs) the Chromium that vitest browser mode and
// Playwright drive. Order: an explicit env override, Playwright's own browser, the distro's.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** Flags verified on this project's CI machines (root, closed network). */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

const SYSTEM_PATHS = ['/usr/bin/chromium', '/usr/bin/chromium-browser'];

/**
 * Path of a usable Chromium executable, or `undefined` when there is none.
 * @returns {string | undefined}
 */
export function findChromium() {
  for (const name of ['MITTSYNC_CHROMIUM', 'CHROMIUM_PATH']) {
    const value = process.env[name];
    if (value) {
      if (!existsSync(value)) throw new Error(`${name}=${value} does not exist`);
      return value;
    }
  }
  try {
    /** @type {typeof import('playwright')} */
    const { chromium } = require('playwright');
    const path = chromium.executablePath();
    if (path && existsSync(path)) return path;
  } catch {
    // playwright not installed or no browser downloaded: fall through to the system one
  }
  return SYSTEM_PATHS.find((p) => existsSync(p));
}

/**
 * Like `findChromium()`, but installs Chromium with apt-get when running as root on a Debian-like
 * machine, and otherwise throws with instructions.
 * @returns {string}
 */
export function ensureChromium() {
  const found = findChromium();
  if (found) return found;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const hasApt = existsSync('/usr/bin/apt-get') && existsSync('/etc/debian_version');
  if (isRoot && hasApt) {
    console.log('No Chromium found; installing it with apt-get (Debian package "chromium")...');
    execFileSync('sh', ['-c', 'apt-get update && apt-get install -y chromium'], { stdio: 'inherit' });
    const installed = findChromium();
    if (installed) return installed;
  }
  throw new Error(
    [
      'No Chromium found for browser tests. Any one of these fixes it:',
      '  - npx playwright install chromium',
      '  - (Debian/Ubuntu, as root) apt-get update && apt-get install -y chromium',
      '  - set MITTSYNC_CHROMIUM=/path/to/chromium',
    ].join('\n'),
  );
}
