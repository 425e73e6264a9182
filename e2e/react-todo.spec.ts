import { type BrowserContext, expect, type Page, test } from '@playwright/test';
import type { RenderCounts } from '../apps/react-todo/src/renders';
import { relayValues } from './support/relay-data';
import { REACT_TODO_DIST, RelayProcess } from './support/relay-process';

// The React example (apps/react-todo, built by the global setup) served by its own relay.

const renders = (page: Page): Promise<RenderCounts> =>
  page.evaluate(() => JSON.parse(JSON.stringify(window.__todoRenders)) as RenderCounts);

const titles = (page: Page) => page.getByTestId('title');
const badge = (page: Page) => page.getByTestId('sync-badge');

async function add(page: Page, title: string): Promise<void> {
  await page.getByTestId('new-title').fill(title);
  await page.getByTestId('add').click();
}

/** Waits for React to commit whatever is still on its way (status events come every 50 ms). */
const settle = (page: Page) => page.waitForTimeout(300);

test('react-todo: live updates render only what changed, offline edits sync on reconnect', async ({
  browser,
}, testInfo) => {
  const relay = await RelayProcess.start({ args: ['--static', REACT_TODO_DIST] });
  const contexts: BrowserContext[] = [];
  const logs: string[] = [];
  const bucket = `todo-${testInfo.testId.slice(0, 8)}`;
  const open = async (label: string): Promise<Page> => {
    const ctx = await browser.newContext();
    contexts.push(ctx);
    const page = await ctx.newPage();
    page.on('console', (m) => logs.push(`[${label}] ${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => logs.push(`[${label}] pageerror: ${e.message}`));
    await page.goto(`${relay.httpUrl}/?bucket=${bucket}`);
    await expect(badge(page)).toHaveAttribute('data-state', 'synced');
    await expect(page.getByTestId('left')).toHaveText('0 left of 0');
    return page;
  };
  try {
    const a = await open('a');
    const b = await open('b');

    for (const t of ['milk', 'eggs', 'bread', 'jam', 'tea']) await add(a, t);
    await expect(titles(a)).toHaveText(['milk', 'eggs', 'bread', 'jam', 'tea']);
    await expect(titles(b)).toHaveText(['milk', 'eggs', 'bread', 'jam', 'tea']);
    await settle(b);

    // Re-renders per live change: device A ticks off todos one at a time; device B receives
    // each as a live change. Only the list and the todo that changed may render.
    const keys = await b.getByTestId('todo').evaluateAll((els) => els.map((e) => e.getAttribute('data-key')));
    const beforeB = await renders(b);
    const beforeA = await renders(a);
    const CHANGES = 3;
    for (let i = 0; i < CHANGES; i++) {
      // A controlled checkbox: it shows the change once the live query brings it back.
      await a.getByRole('checkbox').nth(i).click();
      await expect(a.getByRole('checkbox').nth(i)).toBeChecked();
      await expect(b.getByTestId('todo').nth(i)).toHaveClass('done');
    }
    await expect(b.getByTestId('left')).toHaveText('2 left of 5');
    await settle(b);
    const afterB = await renders(b);
    const afterA = await renders(a);
    const perChange = (after: RenderCounts, before: RenderCounts) => ({
      deliveries: (after.deliveries - before.deliveries) / CHANGES,
      list: (after.list - before.list) / CHANGES,
      badge: (after.badge - before.badge) / CHANGES,
      changedItem:
        keys
          .slice(0, CHANGES)
          .map((k) => (after.items[k ?? ''] ?? 0) - (before.items[k ?? ''] ?? 0))
          .reduce((x, y) => x + y, 0 as number) / CHANGES,
      otherItems: keys
        .slice(CHANGES)
        .map((k) => (after.items[k ?? ''] ?? 0) - (before.items[k ?? ''] ?? 0))
        .reduce((x, y) => x + y, 0 as number),
    });
    const receiver = perChange(afterB, beforeB);
    const writer = perChange(afterA, beforeA);
    const figures = `renders per live change: receiving device ${JSON.stringify(receiver)}; writing device ${JSON.stringify(writer)}`;
    console.log(figures);
    testInfo.annotations.push({ type: 'renders', description: figures });
    expect(receiver).toEqual({ deliveries: 1, list: 1, badge: 0, changedItem: 1, otherItems: 0 });
    expect(writer.deliveries).toBe(1);
    expect(writer.list).toBe(1);
    expect(writer.changedItem).toBe(1);
    expect(writer.otherItems).toBe(0);

    // Offline on B: edits stay local, the badge counts them; A writes meanwhile.
    await b.getByTestId('online-toggle').click();
    await expect(badge(b)).toHaveAttribute('data-state', 'offline');
    await add(b, 'written offline');
    await b.getByRole('checkbox').nth(0).click(); // milk: not done after all
    await expect(b.getByRole('checkbox').nth(0)).not.toBeChecked();
    await b.getByRole('button', { name: 'Delete bread' }).click();
    await expect(badge(b)).toHaveAttribute('data-pending', '3');
    await expect(badge(b)).toHaveText('Offline · 3 unsent');
    await expect(titles(b)).toHaveText(['milk', 'eggs', 'jam', 'tea', 'written offline']);
    await add(a, 'from a meanwhile');
    await expect(titles(a)).toHaveText(['milk', 'eggs', 'bread', 'jam', 'tea', 'from a meanwhile']);
    await settle(b);
    await expect(titles(b), 'offline: nothing from A arrives').toHaveText([
      'milk',
      'eggs',
      'jam',
      'tea',
      'written offline',
    ]);
    expect([...(await relayValues(relay, bucket)).values()]).not.toContainEqual(
      expect.objectContaining({ title: 'written offline' }),
    );

    // Back online: both devices and the relay agree.
    await b.getByTestId('online-toggle').click();
    await expect(badge(b)).toHaveAttribute('data-state', 'synced');
    const want = ['milk', 'eggs', 'jam', 'tea', 'written offline', 'from a meanwhile'];
    await expect(titles(a)).toHaveText(want);
    await expect(titles(b)).toHaveText(want);
    await expect(a.getByTestId('left')).toHaveText('5 left of 6');
    await expect(b.getByTestId('left')).toHaveText('5 left of 6');
    await expect(badge(a)).toHaveAttribute('data-state', 'synced');
    await expect
      .poll(async () =>
        [...(await relayValues(relay, bucket)).values()]
          .filter((v) => v !== null && v !== undefined)
          .map((v) => (v as { title: string; done: boolean }).title)
          .sort(),
      )
      .toEqual([...want].sort());
  } finally {
    if (testInfo.status !== testInfo.expectedStatus) {
      await testInfo.attach('console.txt', { body: logs.join('\n'), contentType: 'text/plain' });
      await testInfo.attach('relay.log', { body: relay.output, contentType: 'text/plain' });
    }
    for (const ctx of contexts) await ctx.close().catch(() => undefined);
    await relay.dispose();
  }
});
