import { relayValues } from './support/relay-data';
import { expect, expectConverged, seed, test } from './support/test';

test('without SharedWorker, the leader tab closes and another takes over without losing writes', async ({
  relay,
  faults,
  bucket,
  newDevice,
  openDemo,
}) => {
  await seed(relay, bucket, 300);
  const device = await newDevice('device');
  const params = { bucket, hosting: 'dedicated' as const, relay: faults.syncUrl };
  const leader = await openDemo(device, params, 'leader tab');
  await leader.whenReady();
  await expect.poll(async () => (await leader.status())?.hosting).toBe('leader');
  const follower = await openDemo(device, params, 'follower tab');
  const third = await openDemo(device, params, 'third tab');
  for (const t of [follower, third]) {
    await t.whenReady();
    await expect.poll(async () => (await t.status())?.hosting).toBe('follower');
  }
  // One replica for the device, hosted by the leader's worker.
  const replicaId = await leader.replicaId();
  expect(await follower.replicaId()).toBe(replicaId);

  // Every tab writes; the follower's load goes on through the hand-over.
  await follower.startWriter('follower', 30);
  await expect.poll(async () => (await follower.writerStats()).acked).toBeGreaterThan(15);

  // With the network cut, the leader's writes can only be acked locally: they are in
  // IndexedDB's outbox, not on the relay, when the leader's tab closes.
  faults.cut();
  await expect.poll(async () => (await leader.status())?.connection).not.toBe('open');
  const leaderRows: [string, unknown][] = [];
  for (let i = 0; i < 25; i++) leaderRows.push([`leader-${i}`, { n: i }]);
  await leader.transact(leaderRows);
  await third.put('third-before', { n: 1 });
  await leader.page.close();

  // Another tab takes over from the same IndexedDB and keeps serving every tab.
  await expect
    .poll(async () => [(await follower.status())?.hosting, (await third.status())?.hosting].sort().join())
    .toBe('follower,leader');
  await third.put('third-after', { n: 2 });
  faults.restore();
  await expect.poll(async () => (await follower.writerStats()).acked).toBeGreaterThan(60);
  const stats = await follower.stopWriter();

  const want = await expectConverged(relay, bucket, [follower, third]);
  const onRelay = await relayValues(relay, bucket);
  const acked = [...leaderRows.map(([k]) => k), 'third-before', 'third-after', ...stats.keys];
  expect(
    acked.filter((k) => !onRelay.has(k)),
    'acked writes missing on the relay',
  ).toEqual([]);
  // A write the dead leader had taken but not acked may have failed with CLOSED (and may or
  // may not be stored); nothing else is on the relay.
  expect(want.count).toBeGreaterThanOrEqual(300 + 25 + 2 + stats.keys.length);
  expect(want.count).toBeLessThanOrEqual(300 + 25 + 2 + stats.issued);
  expect(await follower.replicaId()).toBe(replicaId);
});
