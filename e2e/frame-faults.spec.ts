import { relayValues } from './support/relay-data';
import { expect, expectConverged, seed, test } from './support/test';

test('WebSocket frames dropped and duplicated: everything converges', async ({
  relay,
  faults,
  bucket,
  newDevice,
  openDemo,
}) => {
  await seed(relay, bucket, 2_000);
  const viaProxy = { bucket, relay: faults.syncUrl };
  const a = await openDemo(await newDevice('A'), viaProxy, 'device A');
  const b = await openDemo(await newDevice('B'), viaProxy, 'device B');
  await Promise.all([a.whenReady(), b.whenReady()]);

  // Data-plane frames (push, ack, deliver) are dropped; any frame may arrive twice.
  faults.setFaults({ drop: 0.08, duplicate: 0.15 });
  await a.startWriter('a', 40);
  await b.startWriter('b', 40);
  const contested = Array.from({ length: 10 }, (_, i) => `sku-${String(i).padStart(6, '0')}`);
  for (let round = 0; round < 10; round++) {
    await a.transact(contested.map((k) => [k, { round, by: 'a' }]));
    await b.transact(contested.map((k) => [k, { round, by: 'b' }]));
    await a.delete(`sku-${String(100 + round).padStart(6, '0')}`);
  }
  await expect.poll(async () => (await b.writerStats()).acked).toBeGreaterThan(100);
  const dropped = () => Object.values(faults.stats.dropped).reduce((x, y) => x + y, 0);
  const duplicated = () => Object.values(faults.stats.duplicated).reduce((x, y) => x + y, 0);
  await expect.poll(dropped, { message: 'frames were dropped' }).toBeGreaterThan(5);
  expect(duplicated(), 'frames were duplicated').toBeGreaterThan(5);
  const stats = await Promise.all([a.stopWriter(), b.stopWriter()]);
  for (const s of stats) expect(s.failed).toBe(0);

  // Faults off: the replicas find their gaps, re-send unacked ops, and converge.
  faults.setFaults({ drop: 0, duplicate: 0 });
  const want = await expectConverged(relay, bucket, [a, b], 90_000);
  const written = stats.flatMap((s) => s.keys);
  expect(want.count).toBe(2_000 - 10 + written.length);
  const onRelay = await relayValues(relay, bucket);
  expect(written.filter((k) => !onRelay.has(k))).toEqual([]);
  // The contested rows hold the last round of one writer, identically everywhere.
  for (const k of contested) expect(onRelay.get(k)).toMatchObject({ round: 9 });
});
