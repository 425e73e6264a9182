import { relayValues } from './support/relay-data';
import { expect, expectConverged, seed, test } from './support/test';

test('editing in place offline: each click opens its editor, also when rows move under it', async ({
  relay,
  bucket,
  newDevice,
  openDemo,
}) => {
  await seed(relay, bucket, 200);
  const tab = await openDemo(await newDevice('device'), { bucket }, 'tab');
  await tab.whenReady();
  const ui = tab.page;
  const editor = (key: string, field: string) => ui.getByLabel(`${field} of ${key}`);
  // An editor that does not open fails in seconds, not after the default 30.
  const opens = { timeout: 5_000 };

  await ui.getByTestId('offline').click();
  await expect.poll(async () => (await tab.status())?.connection).toBe('closed');

  // An offline edit saved with Enter, then at once a click on another cell.
  await tab.editCell('sku-000001', 'name', 'offline 1');
  await (await tab.cell('sku-000004', 'qty')).click();
  await expect(editor('sku-000004', 'qty')).toBeFocused(opens);
  await editor('sku-000004', 'qty').fill('44');
  // Another cell clicked while this editor is open: the edit is saved, the new editor opens.
  await ui.locator('[data-key="sku-000005"] [data-field="name"]').click();
  await expect(editor('sku-000005', 'name')).toBeFocused(opens);
  await expect(editor('sku-000004', 'qty')).toHaveCount(0);
  await editor('sku-000005', 'name').press('Escape');

  // Rows added above while an editor is open (a live write, here an offline one): its row
  // moves to another of the table's reused row elements, and the editor goes with it.
  await (await tab.cell('sku-000010', 'name')).click();
  await expect(editor('sku-000010', 'name')).toBeFocused(opens);
  await editor('sku-000010', 'name').fill('offline 10');
  await tab.transact([['a-above-1', { name: 'above 1' }]]);
  await expect(ui.getByTestId('row-count')).toHaveText('201');
  await tab.nextFrame();
  await expect(editor('sku-000010', 'name')).toBeFocused(opens);
  await editor('sku-000010', 'name').press('Enter');

  // Rows added above between the press and the click: the click edits the row pressed, not
  // the one its row element shows by the time the button comes up.
  const box = await (await tab.cell('sku-000020', 'name')).boundingBox();
  if (box === null) throw new Error('no box for sku-000020');
  await ui.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await ui.mouse.down();
  await tab.transact([['a-above-2', { name: 'above 2' }]]);
  await expect(ui.getByTestId('row-count')).toHaveText('202');
  await tab.nextFrame();
  await ui.mouse.up();
  await expect(editor('sku-000020', 'name')).toBeFocused(opens);
  await editor('sku-000020', 'name').fill('offline 20');
  await editor('sku-000020', 'name').press('Enter');

  await expect(ui.getByTestId('pending')).toHaveText('6');
  await ui.getByTestId('offline').click();
  await expectConverged(relay, bucket, [tab]);
  const onRelay = await relayValues(relay, bucket);
  expect(onRelay.get('sku-000001')).toMatchObject({ name: 'offline 1' });
  expect(onRelay.get('sku-000004')).toMatchObject({ qty: 44 });
  expect(onRelay.get('sku-000010')).toMatchObject({ name: 'offline 10' });
  expect(onRelay.get('sku-000020')).toMatchObject({ name: 'offline 20' });
});

test('the table: every column header in one font, every cell as tall as its row', async ({
  relay,
  bucket,
  newDevice,
  openDemo,
}) => {
  await seed(relay, bucket, 20);
  const tab = await openDemo(await newDevice('device'), { bucket }, 'tab');
  await tab.whenReady();
  const fonts = await tab.page.$$eval('.row.head .cell', (cells) =>
    cells.map((c) => {
      const s = getComputedStyle(c);
      return { title: c.textContent, font: `${s.fontSize} ${s.fontFamily} ${s.fontWeight}` };
    }),
  );
  expect(fonts.map((f) => f.title)).toEqual(['#', 'SKU', 'Item', 'Qty', 'Price', 'Location', 'Last edit by']);
  expect(new Set(fonts.map((f) => f.font)).size, JSON.stringify(fonts)).toBe(1);
  // A click anywhere in a row's cell reaches the cell, not the row around it.
  const heights = await tab.page.$$eval('[data-key="sku-000002"], [data-key="sku-000002"] .cell', (els) =>
    els.map((e) => Math.round(e.getBoundingClientRect().height)),
  );
  const [row, ...cells] = heights;
  for (const h of cells) expect(h).toBeGreaterThanOrEqual((row ?? 0) - 1);
});
