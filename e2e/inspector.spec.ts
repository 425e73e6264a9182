import { relayHead } from './support/relay-data';
import { expect, expectConverged, seed, test } from './support/test';

const inspected = (text: string | null) => Number((text ?? '').replace(/\D/g, ''));

test('a device that only receives: its inspector follows live writes, and only live changes flash', async ({
  relay,
  bucket,
  newDevice,
  openDemo,
}) => {
  await seed(relay, bucket, 3_000);
  const writer = await openDemo(await newDevice('writer'), { bucket }, 'writer');
  await writer.whenReady();
  // New rows keyed `w-…` sort after the seeded `sku-…` ones: the receiver's first screen of
  // rows stays the seeded rows its join downloads.
  await writer.startWriter('w', 200);

  // The receiver joins while the writer writes, and writes nothing itself.
  const receiver = await openDemo(await newDevice('receiver'), { bucket, open: false }, 'receiver');
  await receiver.recordFlashes();
  await receiver.open();
  await receiver.whenReady();
  const ui = receiver.page.getByTestId('inspector');
  await expect(ui.getByTestId('phase')).toHaveText('ready');
  const atReady = (await receiver.bucketStatus())?.checkpoint ?? 0;

  // The checkpoint it shows moves on with the live writes it receives.
  await expect
    .poll(async () => inspected(await ui.getByTestId('checkpoint').textContent()), {
      message: 'the inspector shows the checkpoint advancing',
    })
    .toBeGreaterThan(atReady + 50);

  // Rows the join downloaded did not flash; a row another device changes does.
  await receiver.nextFrame();
  expect(
    (await receiver.flashedKeys()).filter((k) => k.startsWith('sku-')),
    'rows downloaded by the join',
  ).toEqual([]);
  await writer.put('sku-000003', { name: 'changed live', qty: 3, price: 300, location: 'A', by: 'writer' });
  await expect
    .poll(() => receiver.flashedKeys(), { message: 'a live change flashes' })
    .toContain('sku-000003');
  expect((await receiver.flashedKeys()).filter((k) => k.startsWith('sku-'))).toEqual(['sku-000003']);

  // At rest: the checkpoint is the relay's head, and the mitt holds nothing.
  const stats = await writer.stopWriter();
  expect(stats.failed).toBe(0);
  await expect.poll(async () => (await writer.bucketStatus())?.pending).toBe(0);
  const head = await relayHead(relay, bucket);
  await expect
    .poll(async () => inspected(await ui.getByTestId('checkpoint').textContent()), {
      message: 'the inspector shows the relay head as checkpoint',
    })
    .toBe(head);
  await expect(ui.getByTestId('mitt')).toHaveText('empty');
  // Where the bucket's replicas are, as the relay knows them: this device and the writer.
  const replicas = ui.getByTestId('replicas');
  await expect(replicas).toContainText('(this device)', { timeout: 15_000 });
  await expect
    .poll(() => replicas.locator('li.good').count(), { message: 'both devices listed as connected' })
    .toBeGreaterThanOrEqual(2);
  expect((await receiver.bucketStatus())?.mitt).toEqual({ ops: 0, bytes: 0 });
  expect((await receiver.bucketStatus())?.pending).toBe(0);
  await expectConverged(relay, bucket, [writer, receiver]);
});
