import { expect, expectConverged, seed, test } from './support/test';

test('two tabs edit one bucket and converge, with another device watching', async ({
  relay,
  bucket,
  newDevice,
  openDemo,
}) => {
  await seed(relay, bucket, 500);
  const laptop = await newDevice('laptop');
  const tab1 = await openDemo(laptop, { bucket }, 'tab 1');
  const tab2 = await openDemo(laptop, { bucket }, 'tab 2');
  const phone = await openDemo(await newDevice('phone'), { bucket }, 'phone');
  for (const d of [tab1, tab2, phone]) await d.whenReady();
  // Tabs of one device share one replica; the other device has its own.
  expect(await tab1.replicaId()).toBe(await tab2.replicaId());
  expect(await phone.replicaId()).not.toBe(await tab1.replicaId());

  // An edit in place through the table in tab 1 shows up in tab 2's table and on the phone.
  await tab1.editCell('sku-000003', 'qty', '4242');
  for (const d of [tab1, tab2, phone]) await expect(await d.cell('sku-000003', 'qty')).toHaveText('4242');

  // Both tabs and the phone write at once: new rows each, and the same rows (conflicts).
  await tab1.startWriter('tab1', 40);
  await tab2.startWriter('tab2', 40);
  await phone.startWriter('phone', 40);
  const contested = ['sku-000010', 'sku-000011', 'sku-000012', 'sku-000013'];
  for (let round = 0; round < 5; round++) {
    await Promise.all(
      [tab1, tab2, phone].map((d, i) =>
        d.transact(
          contested.map((k) => [
            k,
            { name: `${d.label} round ${round}`, qty: i, price: 1, location: 'x', by: d.label },
          ]),
        ),
      ),
    );
  }
  await tab1.delete('sku-000020');
  await phone.delete('sku-000021');
  await expect
    .poll(async () => (await tab2.writerStats()).acked, { message: 'tab 2 wrote' })
    .toBeGreaterThan(40);
  const stats = await Promise.all([tab1.stopWriter(), tab2.stopWriter(), phone.stopWriter()]);
  for (const s of stats) expect(s.failed).toBe(0);

  const want = await expectConverged(relay, bucket, [tab1, tab2, phone]);
  const written = stats.reduce((n, s) => n + s.keys.length, 0);
  expect(want.count).toBe(500 - 2 + written);
  // Every acknowledged write is on the relay, with the value its writer gave it.
  const values = await tab1.getMany(stats.flatMap((s) => s.keys));
  expect(values.filter((v) => v === undefined)).toHaveLength(0);
  expect(await tab2.get('sku-000020')).toBeUndefined();
  expect(await tab1.get('sku-000021')).toBeUndefined();
});
