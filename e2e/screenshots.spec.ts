import { join } from 'node:path';
import { ROOT } from './support/relay-process';
import { expect, test } from './support/test';

// The README's pictures of the demo, taken against the real relay:
//   MITTSYNC_SCREENSHOTS=1 npx playwright test screenshots
// writes docs/screenshots/*.png. Left out of the normal run by playwright.config.ts.
const OUT = join(ROOT, 'docs', 'screenshots');

test.use({ relayData: 'seeded' });

test('screenshots of the demo: the table under load, and a new device joining', async ({
  bucket,
  newDevice,
  openDemo,
}) => {
  const laptop = await openDemo(await newDevice('laptop'), { bucket }, 'laptop');
  await laptop.whenReady();
  const phone = await openDemo(await newDevice('phone'), { bucket, db: 'phone' }, 'phone');
  await phone.whenReady();

  // Both devices edit: the phone runs the load generator, the laptop edits a cell in place.
  await phone.page.getByTestId('rate').fill('40');
  await phone.page.getByTestId('load').click();
  await laptop.page.getByTestId('rate').fill('40');
  await laptop.page.getByTestId('load').click();
  await laptop.editCell('sku-041230', 'name', 'Cordless Drill (blue)');
  await laptop.cell('sku-041215', 'qty');
  await expect.poll(async () => (await laptop.bucketStatus())?.verified ?? 0).toBeGreaterThan(3);
  const qty = await laptop.cell('sku-041224', 'qty');
  await qty.click();
  await laptop.page.getByLabel('qty of sku-041224').fill('120');
  await laptop.page.screenshot({ path: join(OUT, 'table.png') });
  await laptop.page.keyboard.press('Enter');

  // A new device joins the 100k rows while both keep writing: caught mid-join.
  const tablet = await openDemo(
    await newDevice('tablet'),
    { bucket, db: 'tablet', pageSize: 400, parallel: 2 },
    'tablet',
  );
  await expect
    .poll(async () => {
      const s = await tablet.bucketStatus();
      return s?.phase === 'joining' && s.progress.entries >= 35_000;
    })
    .toBe(true);
  await tablet.page.screenshot({ path: join(OUT, 'inspector-joining.png') });
  await tablet.whenReady();
  await tablet.page.screenshot({ path: join(OUT, 'inspector-ready.png') });
});
