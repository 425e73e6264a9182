import { relayValues } from './support/relay-data';
import { expect, expectConverged, seed, test } from './support/test';

test('offline edits on one device merge after it reconnects', async ({
  relay,
  faults,
  bucket,
  newDevice,
  openDemo,
}) => {
  await seed(relay, bucket, 1_000);
  // The laptop reaches the relay through the fault proxy (its network); the desktop directly.
  const laptop = await openDemo(await newDevice('laptop'), { bucket, relay: faults.syncUrl }, 'laptop');
  const desktop = await openDemo(await newDevice('desktop'), { bucket }, 'desktop');
  await Promise.all([laptop.whenReady(), desktop.whenReady()]);

  // The desktop edits some rows first; the laptop, offline, edits the same rows later (so its
  // versions are newer and must win), and other rows the desktop edits after it (desktop wins).
  await desktop.transact([
    ['sku-000001', { name: 'desktop early 1', qty: 1, price: 100, location: 'A', by: 'desktop' }],
    ['sku-000002', { name: 'desktop early 2', qty: 2, price: 100, location: 'A', by: 'desktop' }],
  ]);
  await expect.poll(() => laptop.get('sku-000002')).toMatchObject({ name: 'desktop early 2' });

  faults.cut();
  await expect.poll(async () => (await laptop.status())?.connection).not.toBe('open');

  // Offline on the laptop: an edit in place through the table, new rows, a delete, and
  // edits of the rows the desktop touched.
  await laptop.editCell('sku-000000', 'name', 'Edited offline');
  await expect(await laptop.cell('sku-000000', 'name')).toHaveText('Edited offline');
  const offlineRows: [string, unknown][] = [];
  for (let i = 0; i < 50; i++) offlineRows.push([`offline-${i}`, { n: i, by: 'laptop' }]);
  await laptop.transact(offlineRows);
  await laptop.delete('sku-000005');
  await laptop.transact([
    ['sku-000001', { name: 'laptop late 1', qty: 11, price: 100, location: 'B', by: 'laptop' }],
    ['sku-000002', { name: 'laptop late 2', qty: 12, price: 100, location: 'B', by: 'laptop' }],
    ['sku-000003', { name: 'laptop early 3', qty: 13, price: 100, location: 'B', by: 'laptop' }],
  ]);
  expect((await laptop.bucketStatus())?.pending, 'offline writes wait in the outbox').toBeGreaterThanOrEqual(
    55,
  );

  // Meanwhile the desktop writes on, including a later edit of sku-000003 and a delete. (Its
  // clock has not seen the laptop's offline writes: wait for the next millisecond so the later
  // write is also the newer version, rather than a tie the replica ids would break.)
  const wroteAt = Date.now();
  await expect.poll(() => Date.now()).toBeGreaterThan(wroteAt + 1);
  await desktop.transact([
    ['sku-000003', { name: 'desktop late 3', qty: 3, price: 100, location: 'C', by: 'desktop' }],
    ['desktop-new', { n: 1, by: 'desktop' }],
    ['sku-000007', null],
  ]);
  await expect.poll(async () => (await desktop.bucketStatus())?.pending).toBe(0);
  const relayBefore = await relayValues(relay, bucket);
  expect(relayBefore.has('offline-0'), 'nothing of the laptop reached the relay while offline').toBe(false);

  faults.restore();
  const want = await expectConverged(relay, bucket, [laptop, desktop]);
  expect(want.count).toBe(1_000 + 50 + 1 - 2);

  const onRelay = await relayValues(relay, bucket);
  expect(onRelay.get('sku-000000')).toMatchObject({ name: 'Edited offline' });
  expect(onRelay.get('sku-000001')).toMatchObject({ name: 'laptop late 1' });
  expect(onRelay.get('sku-000002')).toMatchObject({ name: 'laptop late 2' });
  expect(onRelay.get('sku-000003')).toMatchObject({ name: 'desktop late 3' });
  expect(onRelay.has('sku-000005')).toBe(false);
  expect(onRelay.has('sku-000007')).toBe(false);
  expect(onRelay.get('desktop-new')).toEqual({ n: 1, by: 'desktop' });
  for (const [k, v] of offlineRows) expect(onRelay.get(k)).toEqual(v);
  await expect(await desktop.cell('sku-000000', 'name')).toHaveText('Edited offline');
});
