import { relayDigest } from './support/relay-data';
import { expect, SEEDED, test } from './support/test';

test.use({ relayData: 'seeded' });

for (const hosting of ['auto', 'dedicated'] as const) {
  test(`a reload in the middle of a join never serves a half-joined bucket as ready (${hosting === 'auto' ? 'SharedWorker' : 'dedicated worker'})`, async ({
    relay,
    bucket,
    newDevice,
    openDemo,
  }) => {
    const want = await relayDigest(relay, bucket);
    expect(want.count).toBe(SEEDED.rows);
    const params = { bucket, hosting, pageSize: 500, capture: true };
    const tab = await openDemo(await newDevice('device'), params, 'joiner');
    await expect.poll(async () => (await tab.bucketStatus())?.progress.pages ?? 0).toBeGreaterThanOrEqual(8);
    const mid = await tab.bucketStatus();
    expect(mid?.ready, 'reloading mid-join').toBe(false);

    await tab.reload();
    // From its first status on, the reloaded page must never see `ready` before the copy is whole.
    await tab.whenReady();
    const first = await tab.firstReady();
    expect(first, 'captured the first ready').not.toBeNull();
    expect(first?.view, 'the table at the first ready status').toEqual(want);
    await expect.poll(async () => (await tab.firstReady())?.storage).toEqual(want);
    const history = await tab.history();
    const firstReadyAt = history.findIndex((p) => p.phase === 'ready' || p.ready);
    expect(firstReadyAt, 'ready was reported').toBeGreaterThanOrEqual(0);
    // Before it, the bucket said it was joining (or resuming) and not ready.
    for (const p of history.slice(0, firstReadyAt)) expect(p.ready).toBe(false);
    expect(await tab.digest()).toEqual(want);
    expect(await tab.viewDigest()).toEqual(want);
  });
}
