import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium } from '@playwright/test';
import { CHROMIUM_ARGS, findChromium } from '../scripts/chromium.mjs';
import { relayValues } from './support/relay-data';
import { expect, expectConverged, seed, test } from './support/test';

/** A browser on a profile directory: IndexedDB on disk, as on a user's machine. */
function launch(profile: string): Promise<BrowserContext> {
  const executablePath = findChromium();
  return chromium.launchPersistentContext(profile, {
    ...(executablePath === undefined ? {} : { executablePath }),
    args: CHROMIUM_ARGS,
    viewport: { width: 1400, height: 900 },
  });
}

/** SIGKILLs every process of the browser behind `context` (their ids come from the browser itself). */
async function killBrowser(context: BrowserContext): Promise<number> {
  const browser = context.browser();
  if (browser === null) throw new Error('no browser behind the context');
  const cdp = await browser.newBrowserCDPSession();
  const { processInfo } = (await cdp.send('SystemInfo.getProcessInfo')) as {
    processInfo: { type: string; id: number }[];
  };
  let killed = 0;
  for (const { id } of processInfo) {
    try {
      process.kill(id, 'SIGKILL');
      killed++;
    } catch {
      // already gone with the browser process
    }
  }
  return killed;
}

test('the browser process SIGKILLed right after writes acked local: they are on disk after a restart and reach the relay', async ({
  relay,
  faults,
  bucket,
  openDemo,
}) => {
  // Enough rows for pages above 64 KB, which Chromium keeps as blob files beside LevelDB:
  // those are read back from disk after the kill too.
  await seed(relay, bucket, 3000);
  const profile = mkdtempSync(join(tmpdir(), 'mittsync-e2e-profile-'));
  const contexts: BrowserContext[] = [];
  try {
    const params = { bucket, relay: faults.syncUrl };
    const first = await launch(profile);
    contexts.push(first);
    const tab = await openDemo(first, params, 'before the kill');
    await tab.whenReady();

    // No network: the writes can only be acknowledged locally (IndexedDB and the outbox).
    faults.cut();
    await expect.poll(async () => (await tab.status())?.connection).not.toBe('open');
    const value = {
      name: 'written, then the browser was killed',
      qty: 3,
      price: 300,
      location: 'K',
      by: 'tab',
    };
    await tab.put('sku-000013', value, 'local');
    await tab.put('killed-browser-row', { n: 1 }, 'local');
    // No unload, no clean shutdown of IndexedDB: the whole browser dies at once.
    expect(await killBrowser(first)).toBeGreaterThan(0);
    await first.close().catch(() => undefined);

    // The same profile again, still offline: the writes are read back from disk, pending.
    const again = await launch(profile);
    contexts.push(again);
    const next = await openDemo(again, params, 'after the restart');
    await expect.poll(() => next.get('sku-000013')).toEqual(value);
    expect(await next.get('killed-browser-row')).toEqual({ n: 1 });
    await expect.poll(async () => (await next.bucketStatus())?.pending).toBe(2);
    expect((await relayValues(relay, bucket)).has('killed-browser-row')).toBe(false);

    faults.restore();
    await expect
      .poll(async () => (await relayValues(relay, bucket)).get('killed-browser-row'))
      .toEqual({ n: 1 });
    expect((await relayValues(relay, bucket)).get('sku-000013')).toEqual(value);
    const want = await expectConverged(relay, bucket, [next]);
    expect(want.count).toBe(3001);
  } finally {
    for (const c of contexts) await c.close().catch(() => undefined);
    rmSync(profile, { recursive: true, force: true });
  }
});
