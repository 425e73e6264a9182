import type { Browser } from '@playwright/test';
import { relayValues } from './support/relay-data';
import { expect, expectConverged, seed, test } from './support/test';

/** SharedWorkers the browser runs for pages of `origin` (Playwright lists none: ask CDP). */
async function sharedWorkers(browser: Browser, origin: string): Promise<number> {
  const cdp = await browser.newBrowserCDPSession();
  try {
    const { targetInfos } = (await cdp.send('Target.getTargets')) as {
      targetInfos: { type: string; url: string }[];
    };
    return targetInfos.filter((t) => t.type === 'shared_worker' && t.url.startsWith(origin)).length;
  } finally {
    await cdp.detach();
  }
}

for (const hosting of ['auto', 'dedicated'] as const) {
  test(`a tab closed right after a write acked local: the write reaches the relay after another tab opens (${hosting === 'auto' ? 'SharedWorker' : 'dedicated worker'})`, async ({
    relay,
    faults,
    bucket,
    browser,
    newDevice,
    openDemo,
  }) => {
    await seed(relay, bucket, 200);
    const device = await newDevice('device');
    const params = { bucket, relay: faults.syncUrl, hosting };
    const tab = await openDemo(device, params, 'first tab');
    await tab.whenReady();

    // No network: the write can only be acknowledged locally (IndexedDB and the outbox).
    faults.cut();
    await expect.poll(async () => (await tab.status())?.connection).not.toBe('open');
    const value = { name: 'written, then the tab closed', qty: 7, price: 700, location: 'Z', by: 'tab' };
    await tab.put('sku-000042', value, 'local');
    await tab.put('closed-tab-row', { n: 1 }, 'local');
    await tab.page.close();
    // The replica's worker is gone with its last tab (a SharedWorker too, once it has no page).
    await expect.poll(() => sharedWorkers(browser, relay.httpUrl), { message: 'the worker is gone' }).toBe(0);

    // Another tab of the same device opens the replica again from IndexedDB: the write is
    // there, still unacknowledged, and goes to the relay once the network is back.
    const next = await openDemo(device, params, 'second tab');
    expect(await next.get('sku-000042')).toEqual(value);
    await expect.poll(async () => (await next.bucketStatus())?.pending).toBe(2);
    expect((await relayValues(relay, bucket)).has('closed-tab-row')).toBe(false);
    faults.restore();
    await expect.poll(async () => (await relayValues(relay, bucket)).get('closed-tab-row')).toEqual({ n: 1 });
    expect((await relayValues(relay, bucket)).get('sku-000042')).toEqual(value);
    const want = await expectConverged(relay, bucket, [next]);
    expect(want.count).toBe(201);
  });
}
