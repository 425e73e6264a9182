import { relayValues } from './support/relay-data';
import { expect, expectConverged, SEEDED, test } from './support/test';

test.use({ relayData: 'seeded' });

test('the relay SIGKILLed during a join and during writes: nothing acked is lost, the join completes', async ({
  relay,
  bucket,
  newDevice,
  openDemo,
}) => {
  // A writer that has the bucket, writing with both acknowledgement levels.
  const writer = await openDemo(await newDevice('writer'), { bucket }, 'writer');
  await writer.whenReady();
  await writer.startWriter('w', 40, 'relay');
  const localAcked: string[] = [];
  const writeLocal = async (n: number) => {
    const key = `local-${String(n).padStart(4, '0')}`;
    await writer.put(key, { n }, 'local');
    localAcked.push(key);
  };
  for (let n = 0; n < 20; n++) await writeLocal(n);

  // A new device joins with small pages, so the join is long enough to be cut.
  const joiner = await openDemo(
    await newDevice('joiner'),
    { bucket, pageSize: 500, capture: true },
    'joiner',
  );
  await expect
    .poll(async () => (await joiner.bucketStatus())?.progress.pages ?? 0)
    .toBeGreaterThanOrEqual(10);

  // Kill 1: mid-join.
  await relay.kill();
  const cut = await joiner.bucketStatus();
  expect(cut?.phase, 'the relay died while the joiner was still joining').not.toBe('ready');
  expect(cut?.ready).toBe(false);
  await expect.poll(async () => (await joiner.status())?.connection).not.toBe('open');
  // Writes go on while the relay is down: acked locally, held in the outbox.
  for (let n = 20; n < 40; n++) await writeLocal(n);
  await relay.restart();

  await joiner.whenReady();
  const first = await joiner.firstReady();
  expect(first?.view.count, 'the join completed with the whole bucket').toBeGreaterThanOrEqual(SEEDED.rows);

  // Kill 2: while writes are in flight (the relay-acked writer keeps writing through it).
  await expect.poll(async () => (await writer.writerStats()).acked).toBeGreaterThan(60);
  for (let n = 40; n < 60; n++) await writeLocal(n);
  await relay.kill();
  for (let n = 60; n < 80; n++) await writeLocal(n);
  await relay.restart();
  const before = (await writer.writerStats()).acked;
  await expect
    .poll(async () => (await writer.writerStats()).acked, { timeout: 60_000 })
    .toBeGreaterThan(before + 20);
  const stats = await writer.stopWriter();
  // A relay-acked write survives the relay's death: it resolves once the restarted relay has it.
  expect(stats.failed).toBe(0);

  // Every write acked at either level is on the relay, and everyone equals the relay.
  const want = await expectConverged(relay, bucket, [writer, joiner]);
  const onRelay = await relayValues(relay, bucket);
  expect([...stats.keys, ...localAcked].filter((k) => !onRelay.has(k))).toEqual([]);
  expect(want.count).toBe(SEEDED.rows + stats.keys.length + localAcked.length);
});
