import { describe, expect, expectTypeOf, it } from 'vitest';
import { MittsyncError } from './errors';
import type { Value } from './model';
import type { ReplicaBucket } from './replica-bucket';
import { defineSchema, toVersioned, wrapVersion } from './schema';
import { Harness } from './testing/harness';
import { tinyArray, tinyAsync, tinyBoolean, tinyNumber, tinyObject, tinyString } from './testing/tiny-schema';
import type { InvalidValueReport } from './typed-values';

const settle = () => new Promise<void>((r) => setImmediate(r));

/** Runs virtual time until `p` (a write acked by the relay) settles. */
async function acked<T>(h: Harness, p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  await h.run(300);
  return p;
}

function relayKeys(h: Harness, bucket: string): [string, Value | undefined][] {
  const page = h.relay.host(bucket).page({ type: 'pageReq', bucket, reqId: 1, since: 0, limit: 10 });
  return 'entries' in page ? page.entries.filter((e) => !e.deleted).map((e) => [e.key, e.value]) : [];
}

const order = tinyObject({ title: tinyString, items: tinyArray(tinyObject({ price: tinyNumber })) });
const todoV1 = tinyObject({ title: tinyString });
const todoV2 = defineSchema({
  version: 2,
  schema: tinyObject({ title: tinyString, done: tinyBoolean }),
  migrations: { 2: (v: { title: string }) => ({ ...v, done: false }) },
});

describe('Replica.bucket with a schema', () => {
  it('types reads and writes from the schema', async () => {
    const h = new Harness(settle);
    const { replica } = await h.open('rA');
    const orders = replica.bucket('o', { schema: order });
    expectTypeOf(orders).toEqualTypeOf<
      ReplicaBucket<
        { title: string; items: { price: number }[] },
        { title: string; items: { price: number }[] }
      >
    >();
    expectTypeOf(orders.get).returns.resolves.toEqualTypeOf<
      { title: string; items: { price: number }[] } | undefined
    >();
    const todos = replica.bucket('t', { schema: todoV2 });
    expectTypeOf(todos.get).returns.resolves.toEqualTypeOf<{ title: string; done: boolean } | undefined>();
    // @ts-expect-error: a write must fit the schema's input
    void todos.put('k', { title: 1 }).catch(() => undefined);
    const plain = replica.bucket('p');
    expectTypeOf(plain.get).returns.resolves.toEqualTypeOf<Value | undefined>();
    await replica.close();
  });

  it('refuses an invalid write with the path, storing and pushing nothing', async () => {
    const h = new Harness(settle);
    const { replica, storage } = await h.open('rA');
    const orders = replica.bucket('o', { schema: order });
    await orders.opened;
    await h.run(50);
    const bad = orders.put('o1', {
      title: 'x',
      items: [{ price: 1 }, { price: 2 }, { price: 'three' as unknown as number }],
    });
    await expect(bad).rejects.toMatchObject({ code: 'INVALID_VALUE', detail: { path: 'items[2].price' } });
    // A transaction with one bad value writes none of them.
    const tx = orders.transact((t) => {
      t.put('ok', { title: 'fine', items: [] });
      t.put('bad', { title: 2 as unknown as string, items: [] });
    });
    await expect(tx).rejects.toMatchObject({ code: 'INVALID_VALUE', detail: { key: 'bad', path: 'title' } });
    expect(storage.peek('o').size).toBe(0);
    expect(orders.status()?.pending).toBe(0);
    await acked(h, orders.put('o2', { title: 'y', items: [{ price: 3 }] }, { ack: 'relay' }));
    expect(await orders.get('o2')).toEqual({ title: 'y', items: [{ price: 3 }] });
    expect(relayKeys(h, 'o')).toEqual([['o2', { title: 'y', items: [{ price: 3 }] }]]);
    await replica.close();
  });

  it('awaits an async validator before writing', async () => {
    const h = new Harness(settle);
    const { replica, storage } = await h.open('rA');
    const b = replica.bucket('a', { schema: tinyAsync(todoV1) });
    await expect(b.put('k', { title: 5 as unknown as string })).rejects.toMatchObject({
      code: 'INVALID_VALUE',
    });
    expect(storage.peek('a').size).toBe(0);
    await b.put('k', { title: 'ok' });
    expect(await b.get('k')).toEqual({ title: 'ok' });
    await replica.close();
  });

  it('reports invalid values written by others, skips them in reads, never throws', async () => {
    const h = new Harness(settle);
    const a = await h.open('rA');
    const b = await h.open('rB');
    const typed = b.replica.bucket('t', { schema: todoV1 });
    const heard: InvalidValueReport[] = [];
    typed.onInvalid((r) => heard.push(r));
    await typed.opened;
    await a.replica.openBucket('t');
    await h.run(100);
    await acked(h, a.replica.put('t', 'good', { title: 'ok' }, { ack: 'relay' }));
    await acked(h, a.replica.put('t', 'bad', { title: ['not', 'a', 'string'] }, { ack: 'relay' }));
    expect(heard.map((r) => [r.key, r.reason, r.path])).toEqual([['bad', 'invalid', 'title']]);
    expect(typed.status()?.schema).toMatchObject({
      version: 1,
      newerSeen: null,
      invalid: 1,
      lastInvalid: { key: 'bad' },
    });
    expect(b.replica.status().buckets.find((s) => s.bucket === 't')?.schema?.invalid).toBe(1);
    expect(await typed.get('bad')).toBeUndefined();
    expect(await typed.scan({ prefix: '' })).toEqual([{ key: 'good', value: { title: 'ok' } }]);
    // Deleting it clears the report.
    await acked(h, a.replica.del('t', 'bad', { ack: 'relay' }));
    expect(typed.status()?.schema?.invalid).toBe(0);
    await a.replica.close();
    await b.replica.close();
  });

  it('an older and a newer client share a bucket: migrations up, newer values reported and not written over', async () => {
    const h = new Harness(settle);
    const oldR = await h.open('rOld');
    const newR = await h.open('rNew');
    const older = oldR.replica.bucket('todos', { schema: todoV1 });
    const newer = newR.replica.bucket('todos', { schema: todoV2 });
    await h.run(100);
    await acked(h, older.put('t1', { title: 'milk' }, { ack: 'relay' }));
    // The newer client reads the old value through the migration.
    expect(await newer.get('t1')).toEqual({ title: 'milk', done: false });
    await acked(h, newer.put('t1', { title: 'milk', done: true }, { ack: 'relay' }));
    await acked(h, newer.put('t2', { title: 'eggs', done: false }, { ack: 'relay' }));
    // The older client sees version 2 values: it says so and does not pretend to read them.
    expect(older.status()?.schema).toMatchObject({ version: 1, newerSeen: 2, invalid: 2 });
    expect(await older.get('t1')).toBeUndefined();
    expect((await oldR.replica.get('todos', 't1'))?.value).toEqual(
      wrapVersion(2, { title: 'milk', done: true }),
    );
    // Writing the old shape over a newer value is refused; nothing is stored or pushed.
    const err = await older.put('t1', { title: 'milk!' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MittsyncError);
    expect(err).toMatchObject({
      code: 'SCHEMA_OUTDATED',
      detail: { key: 't1', version: 2, schemaVersion: 1 },
    });
    expect(older.status()?.pending).toBe(0);
    // New keys are fine, and the newer client reads them through the migration.
    await acked(h, older.put('t3', { title: 'bread' }, { ack: 'relay' }));
    // On purpose, an old client may replace it.
    await acked(h, older.put('t2', { title: 'eggs (old app)' }, { ack: 'relay', overwriteNewer: true }));
    expect(await newer.scan({ prefix: '' })).toEqual([
      { key: 't1', value: { title: 'milk', done: true } },
      { key: 't2', value: { title: 'eggs (old app)', done: false } },
      { key: 't3', value: { title: 'bread', done: false } },
    ]);
    expect(newer.status()?.schema).toMatchObject({ version: 2, newerSeen: null, invalid: 0 });
    await oldR.replica.close();
    await newR.replica.close();
  });

  it('a relay with a schema refuses invalid pushes per op and keeps the valid ones', async () => {
    const h = new Harness(settle, { schema: toVersioned(todoV1) });
    const w = await h.open('rW');
    await w.replica.openBucket('t');
    await h.run(100);
    const good = w.replica.put('t', 'a', { title: 'ok' }, { ack: 'relay' });
    const bad = w.replica.put('t', 'b', { title: 7 }, { ack: 'relay' });
    bad.catch(() => undefined);
    const after = w.replica.put('t', 'c', { title: 'also ok' }, { ack: 'relay' });
    await h.run(500);
    await expect(good).resolves.toBeDefined();
    await expect(bad).rejects.toMatchObject({ code: 'INVALID_VALUE' });
    await expect(after).resolves.toBeDefined();
    expect(relayKeys(h, 't').map(([k]) => k)).toEqual(['a', 'c']);
    // The writer re-joins and drops the refused value.
    await h.run(1_000);
    expect(await w.replica.get('t', 'b')).toBeUndefined();
    expect(w.replica.status('t')?.pending).toBe(0);
    await w.replica.close();
  });
});
