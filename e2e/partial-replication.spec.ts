import { relayValues } from './support/relay-data';
import { expect, test } from './support/test';

const item = (name: string, by: string) => ({ name, qty: 1, price: 100, location: 'A', by });

test('row-scoped users see and write only their rows; readOnly refuses; a copy refreshes by dirty set', async ({
  relay,
  bucket,
  newDevice,
  openDemo,
}) => {
  // An admin device with the whole bucket writes both users' rows and some others.
  const admin = await openDemo(await newDevice('admin'), { bucket }, 'admin');
  await admin.whenReady();
  const rows: [string, unknown][] = [];
  for (const who of ['alice', 'bob'])
    for (let i = 0; i < 20; i++)
      rows.push([`${who}/${String(i).padStart(3, '0')}`, item(`${who} ${i}`, 'admin')]);
  for (let i = 0; i < 30; i++) rows.push([`sku-${String(i).padStart(6, '0')}`, item(`sku ${i}`, 'admin')]);
  await admin.transact(rows, 'relay');

  // Two users, each with a dev token limited to their own prefix of the same bucket.
  const alice = await openDemo(await newDevice('alice'), { bucket, rows: 'alice/' }, 'alice');
  const bob = await openDemo(await newDevice('bob'), { bucket, rows: 'bob/' }, 'bob');
  await Promise.all([alice.whenReady(), bob.whenReady()]);
  expect((await alice.digest()).count).toBe(20);
  expect((await bob.digest()).count).toBe(20);
  expect(await alice.get('bob/000')).toBeUndefined();
  expect((await alice.bucketStatus())?.spec).toEqual({ prefixes: ['alice/'] });
  await expect(alice.page.getByTestId('spec')).toHaveText('keys alice/*');

  // Each writes its own rows; a write to the other's is refused at once, with a clear reason.
  expect(await alice.tryPut('alice/new', item('alice new', 'alice'))).toEqual({ ok: true });
  expect(await bob.tryPut('bob/new', item('bob new', 'bob'))).toEqual({ ok: true });
  const refused = await alice.tryPut('bob/000', item('not yours', 'alice'));
  expect(refused).toMatchObject({ code: 'OUTSIDE_SPEC' });
  expect((refused as { message: string }).message).toMatch(/outside this subscription's spec/);
  // The admin sees both writes; each user only its own, also after the other's live write.
  await expect.poll(() => admin.get('alice/new')).toMatchObject({ name: 'alice new' });
  await expect.poll(() => admin.get('bob/new')).toMatchObject({ name: 'bob new' });
  await admin.transact([['bob/live', item('bob live', 'admin')]], 'relay');
  await expect.poll(() => bob.get('bob/live')).toMatchObject({ name: 'bob live' });
  await expect.poll(async () => (await alice.digest()).count).toBe(21);
  expect(await alice.get('bob/live')).toBeUndefined();
  const onRelay = await relayValues(relay, bucket);
  expect(onRelay.get('bob/000')).toMatchObject({ name: 'bob 0' });

  // A readOnly tab: synchronized, but an edit in the table is refused, and says why.
  const reader = await openDemo(await newDevice('reader'), { bucket, policy: 'readOnly' }, 'reader');
  await reader.whenReady();
  await expect(reader.page.getByTestId('policy')).toHaveText(/read-only/);
  await reader.editCell('sku-000001', 'name', 'Edited read-only');
  await expect
    .poll(async () => (await reader.events()).join('\n'))
    .toMatch(/edit of sku-000001 refused: .*read-only/);
  await expect(await reader.cell('sku-000001', 'name')).toHaveText('sku 1');
  expect(await reader.tryPut('sku-000002', item('x', 'reader'))).toMatchObject({ code: 'READ_ONLY' });
  await admin.transact([['sku-000003', item('seen by the reader', 'admin')]], 'relay');
  await expect.poll(() => reader.get('sku-000003')).toMatchObject({ name: 'seen by the reader' });

  // A copy: one consistent download, detached; its refresh brings only what changed since.
  const copy = await openDemo(await newDevice('copy'), { bucket, policy: 'copy' }, 'copy');
  await copy.whenReady();
  await expect.poll(async () => (await copy.bucketStatus())?.phase).toBe('detached');
  const joined = (await copy.digest()).count;
  expect(joined).toBe((await admin.digest()).count);
  await admin.transact(
    [
      ['sku-000004', item('changed after the copy', 'admin')],
      ['sku-000005', null],
    ],
    'relay',
  );
  expect(await copy.get('sku-000004')).toMatchObject({ name: 'sku 4' });
  await copy.recordRemoteChanges();
  const refreshed = await copy.refresh();
  // The refresh downloaded the dirty set (the two changed keys, a tombstone included), not the
  // bucket again.
  expect(refreshed.downloaded).toBe(2);
  expect(await copy.get('sku-000004')).toMatchObject({ name: 'changed after the copy' });
  expect(await copy.get('sku-000005')).toBeUndefined();
  await expect.poll(async () => (await copy.remoteChanges()).sort()).toEqual(['sku-000004', 'sku-000005']);
  expect((await copy.digest()).count).toBe(joined - 1);
});
