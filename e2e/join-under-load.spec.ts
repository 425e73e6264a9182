import { relayValues } from './support/relay-data';
import { expect, expectConverged, SEEDED, test } from './support/test';

const ROWS = SEEDED.rows;
test.use({ relayData: 'seeded' });

test('a third tab and another device join a 100k-row bucket while two devices write', async ({
  relay,
  bucket,
  newDevice,
  openDemo,
}) => {
  // Two writers on two devices, each holding the bucket.
  const deviceA = await newDevice('device A');
  const deviceB = await newDevice('device B');
  const writerA = await openDemo(deviceA, { bucket }, 'writer A');
  const writerB = await openDemo(deviceB, { bucket }, 'writer B');
  await Promise.all([writerA.whenReady(), writerB.whenReady()]);
  const writers = [await writerA.replicaId(), await writerB.replicaId()];
  await writerA.startWriter('wa', 50);
  await writerB.startWriter('wb', 50);
  await expect
    .poll(async () => (await writerB.writerStats()).acked, { message: 'writers running' })
    .toBeGreaterThan(20);

  // Every write acknowledged (locally) before the joins begin must be in each joiner at ready.
  const before = [...(await writerA.writerStats()).keys, ...(await writerB.writerStats()).keys];
  expect(before.length).toBeGreaterThan(20);

  // A third tab in device A's browser, with a database of its own (a new replica), and a new
  // device. Both record what they hold at the very status event that says ready.
  const joinerTab = await openDemo(
    deviceA,
    { bucket, db: 'third-tab', capture: true, open: false },
    'third tab',
  );
  const joinerDevice = await openDemo(
    await newDevice('device C'),
    { bucket, db: 'device-c', capture: true, open: false },
    'device C',
  );
  const joiners = [joinerTab, joinerDevice];
  for (const j of joiners) await j.expectAtReady(before);
  await Promise.all(joiners.map((j) => j.open()));

  const infos = await Promise.all(joiners.map((j) => j.whenReady()));
  for (const [i, info] of infos.entries()) {
    // The state flush waited for both writers: their writes before the join are covered.
    expect(info.flush, joiners[i]?.label).toBe('done');
    expect([...info.covered].sort(), joiners[i]?.label).toEqual(expect.arrayContaining(writers));
    const atReady = await joiners[i]?.page.evaluate((keys) => window.__mittsync.getMany(keys), before);
    expect(atReady?.filter((v) => v === undefined).length).toBe(0);
  }

  // At the status event that said ready, each joiner's table held the whole seed and every
  // write made before it started joining.
  for (const j of joiners) {
    const first = await j.firstReady();
    expect(first, `${j.label} captured its first ready`).not.toBeNull();
    expect(first?.missing, `${j.label}: writes made before joining, absent at ready`).toEqual([]);
    expect(first?.view.count).toBeGreaterThanOrEqual(ROWS + before.length);
  }

  const stats = await Promise.all([writerA.stopWriter(), writerB.stopWriter()]);
  for (const s of stats) expect(s.failed).toBe(0);
  const want = await expectConverged(relay, bucket, [writerA, writerB, ...joiners], 90_000);
  const written = stats.flatMap((s) => s.keys);
  expect(want.count).toBe(ROWS + written.length);
  const onRelay = await relayValues(relay, bucket);
  expect(written.filter((k) => !onRelay.has(k))).toEqual([]);
});
