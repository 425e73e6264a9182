import { Demo } from './support/demo';
import { relayValues } from './support/relay-data';
import { expect, expectConverged, seed, test } from './support/test';

test('the demo controls: load generator, add row, same table in a new tab and on a new device', async ({
  relay,
  bucket,
  newDevice,
  openDemo,
}) => {
  await seed(relay, bucket, 1_000);
  const device = await newDevice('device');
  const tab = await openDemo(device, { bucket }, 'tab');
  await tab.whenReady();
  const ui = tab.page;
  await expect(ui.getByTestId('row-count')).toHaveText('1,000');
  await expect(ui.getByTestId('inspector').getByTestId('phase')).toHaveText('ready');
  await expect(ui.getByTestId('replica-id')).toHaveText(await tab.replicaId());

  // "Add row" appends a row after the seeded ones.
  await ui.getByTestId('add-row').click();
  await expect(ui.getByTestId('row-count')).toHaveText('1,001');
  await expect(await tab.cell('sku-001000', 'name')).toHaveText('New item 1001');

  // The load generator writes N writes/s to existing rows until stopped.
  await ui.getByTestId('rate').fill('200');
  await ui.getByTestId('load').click();
  await expect(ui.getByTestId('load')).toHaveText('Stop load');
  await expect
    .poll(async () => Number((await ui.getByTestId('load-stats').textContent())?.replace(/\D/g, '')))
    .toBeGreaterThan(100);

  // "Open in new tab": the same device, so the same replica, instantly up to date.
  const [sameDevice] = await Promise.all([device.waitForEvent('page'), ui.getByTestId('new-tab').click()]);
  await sameDevice.waitForFunction(() => window.__mittsync !== undefined);
  // "Open as new device": a new database, a new replica that joins while the load runs.
  const [newDeviceTab] = await Promise.all([
    device.waitForEvent('page'),
    ui.getByTestId('new-device').click(),
  ]);
  await newDeviceTab.waitForFunction(() => window.__mittsync !== undefined);
  const second = await sameDevice.evaluate(() => window.__mittsync.status()?.replicaId);
  expect(second).toBe(await tab.replicaId());
  await newDeviceTab.evaluate(() => window.__mittsync.whenReady());
  const other = await newDeviceTab.evaluate(() => window.__mittsync.status()?.replicaId);
  expect(other).not.toBe(await tab.replicaId());
  await expect(newDeviceTab.getByTestId('inspector').getByTestId('phase')).toHaveText('ready');

  await ui.getByTestId('load').click();
  await expect(ui.getByTestId('load')).toHaveText('Start load');
  const demos = [
    tab,
    await Demo.attach(sameDevice, 'new tab'),
    await Demo.attach(newDeviceTab, 'new device'),
  ];
  const want = await expectConverged(relay, bucket, demos);
  expect(want.count).toBe(1_001);
  await expect(newDeviceTab.getByTestId('row-count')).toHaveText('1,001');
});

test('the demo goes offline and online on request: writes wait in the outbox, then sync', async ({
  relay,
  bucket,
  newDevice,
  openDemo,
}) => {
  await seed(relay, bucket, 100);
  const tab = await openDemo(await newDevice('device'), { bucket }, 'tab');
  await tab.whenReady();
  const ui = tab.page;
  await expect(ui.getByTestId('offline')).toBeEnabled();
  await ui.getByTestId('offline').click();
  await expect(ui.getByTestId('connection')).toHaveText('offline (by you)');
  await expect.poll(async () => (await tab.status())?.connection).toBe('closed');
  await tab.editCell('sku-000001', 'name', 'Changed while offline');
  await expect(ui.getByTestId('pending')).toHaveText('1');
  expect((await relayValues(relay, bucket)).get('sku-000001')).not.toMatchObject({
    name: 'Changed while offline',
  });

  await ui.getByTestId('offline').click();
  await expect(ui.getByTestId('pending')).toHaveText('0');
  expect((await relayValues(relay, bucket)).get('sku-000001')).toMatchObject({
    name: 'Changed while offline',
  });
  await expectConverged(relay, bucket, [tab]);
});
