import { MittsyncError } from '@mittsync/core';
import * as v from 'valibot';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import { defineSchema, type InvalidValueReport } from './index';
import type { LiveResult } from './live-query';
import { client, uniq, until } from './testing/helpers';

const zodOrder = z.object({
  title: z.string(),
  items: z.array(z.object({ name: z.string(), price: z.number().nonnegative() })),
});
const valibotOrder = v.object({
  title: v.string(),
  items: v.array(v.object({ name: v.string(), price: v.pipe(v.number(), v.minValue(0)) })),
});

// Version 1 todos had a title; version 2 adds `done`, version 3 turns `done` into a status.
const todoV1 = z.object({ title: z.string() });
const todoV2 = defineSchema({
  version: 2,
  schema: z.object({ title: z.string(), done: z.boolean() }),
  migrations: { 2: (t: { title: string }) => ({ ...t, done: false }) },
});
const todoV3 = defineSchema({
  version: 3,
  schema: v.object({ title: v.string(), status: v.picklist(['open', 'done']) }),
  migrations: {
    2: (t: { title: string }) => ({ ...t, done: false }),
    3: (t: { title: string; done: boolean }) => ({ title: t.title, status: t.done ? 'done' : 'open' }),
  },
});

describe.each([
  ['zod', zodOrder],
  ['valibot', valibotOrder],
] as const)('a bucket typed by %s', (_lib, schema) => {
  it('refuses an invalid write with the path; nothing is stored or queued', async () => {
    const c = client();
    const name = uniq('orders');
    const orders = c.bucket(name, { schema });
    expectTypeOf(orders.get).returns.resolves.toEqualTypeOf<
      { title: string; items: { name: string; price: number }[] } | undefined
    >();
    await orders.whenReady();
    const bad = {
      title: 'lunch',
      items: [
        { name: 'soup', price: 4 },
        { name: 'bread', price: 2 },
        { name: 'tea', price: 'free' as unknown as number },
      ],
    };
    const err = await orders.put('o1', bad).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MittsyncError);
    expect(err).toMatchObject({ code: 'INVALID_VALUE', detail: { path: 'items[2].price', key: 'o1' } });
    expect((err as Error).message).toContain('items[2].price');
    // A batch with one bad value writes none.
    const txErr = await orders
      .transact((tx) => {
        tx.put('o2', { title: 'fine', items: [] });
        tx.put('o3', { title: 'neg', items: [{ name: 'x', price: -1 }] });
      })
      .catch((e: unknown) => e);
    expect(txErr).toMatchObject({ code: 'INVALID_VALUE', detail: { key: 'o3', path: 'items[0].price' } });
    const status = await c.refreshStatus();
    expect(status.buckets.find((b) => b.bucket === name)?.pending).toBe(0);
    // Nothing reached the worker's storage: an untyped handle sees no keys.
    const raw = c.bucket<unknown>(name);
    expect(await raw.scan()).toEqual([]);
    // A valid one goes through and reads back typed.
    await orders.put('o4', { title: 'ok', items: [{ name: 'pie', price: 3 }] }, { ack: 'relay' });
    expect(await orders.get('o4')).toEqual({ title: 'ok', items: [{ name: 'pie', price: 3 }] });
    await c.close();
  });

  it('reports invalid values written by others and leaves them out of reads and live results', async () => {
    const name = uniq('orders');
    const writer = client();
    const reader = client();
    const plain = writer.bucket<unknown>(name);
    await plain.put('good', { title: 'g', items: [] }, { ack: 'relay' });
    await plain.put('bad', { title: 'b', items: [{ name: 'x', price: 'NaN' }] }, { ack: 'relay' });
    const orders = reader.bucket(name, { schema });
    const heard: InvalidValueReport[] = [];
    orders.onInvalid((r) => heard.push(r));
    await orders.whenReady();
    const results: LiveResult<{ title: string }>[] = [];
    const stop = orders.watch({ prefix: '' }, (r) => results.push(r));
    await until(() => results.length > 0, 10_000, 'initial result');
    expect(results[0]?.rows().map((r) => r.key)).toEqual(['good']);
    expect(heard.map((r) => [r.key, r.reason, r.path])).toEqual([['bad', 'invalid', 'items[0].price']]);
    expect(orders.status()?.schema).toMatchObject({ version: 1, invalid: 1, newerSeen: null });
    // The client's status shows it too, for status badges (useStatus and the like).
    expect(reader.status?.buckets.find((b) => b.bucket === name)?.schema?.invalid).toBe(1);
    expect(await orders.get('bad')).toBeUndefined();
    expect((await orders.scan()).map((r) => r.key)).toEqual(['good']);
    // Another bad value arriving live is reported too; the query keeps running.
    await plain.put('worse', 42, { ack: 'relay' });
    await until(() => heard.some((r) => r.key === 'worse'), 10_000, 'live report');
    await plain.put('fixed', { title: 'f', items: [] }, { ack: 'relay' });
    await until(() => results.at(-1)?.get('fixed') !== undefined, 10_000, 'live row');
    expect(
      results
        .at(-1)
        ?.rows()
        .map((r) => r.key),
    ).toEqual(['fixed', 'good']);
    stop();
    await Promise.all([writer.close(), reader.close()]);
  });
});

describe('schema versions across clients', () => {
  it('an older and a newer client on one bucket: migrations up, newer values reported, never written over', async () => {
    const name = uniq('todos');
    const oldApp = client();
    const midApp = client();
    const newApp = client();
    const v1 = oldApp.bucket(name, { schema: todoV1 });
    const v2 = midApp.bucket(name, { schema: todoV2 });
    const v3 = newApp.bucket(name, { schema: todoV3 });
    expectTypeOf(v3.get).returns.resolves.toEqualTypeOf<
      { title: string; status: 'open' | 'done' } | undefined
    >();
    await v1.put('t1', { title: 'milk' }, { ack: 'relay' });
    await v2.put('t2', { title: 'eggs', done: true }, { ack: 'relay' });
    await v3.whenReady();
    // The newest reads both older values through its migrations.
    await until(async () => (await v3.get('t2')) !== undefined, 10_000, 't2 at v3');
    expect(await v3.scan()).toEqual([
      { key: 't1', value: { title: 'milk', status: 'open' } },
      { key: 't2', value: { title: 'eggs', status: 'done' } },
    ]);
    await v3.put('t1', { title: 'milk', status: 'done' }, { ack: 'relay' });
    // The older clients see a newer version: they say so, skip it, and refuse to write over it.
    await until(
      async () => (await v1.get('t1')) === undefined && v1.status()?.schema?.newerSeen === 3,
      10_000,
      'v1 sees v3',
    );
    expect(v1.status()?.schema).toMatchObject({ version: 1, newerSeen: 3 });
    expect(await v1.scan()).toEqual([]); // t2 is version 2, t1 version 3: neither is readable as version 1
    await until(async () => (await v2.get('t1')) === undefined, 10_000, 'v2 sees v3');
    const refused = await v2.put('t1', { title: 'milk', done: false }).catch((e: unknown) => e);
    expect(refused).toMatchObject({
      code: 'SCHEMA_OUTDATED',
      detail: { key: 't1', version: 3, schemaVersion: 2 },
    });
    expect(v2.status()?.schema?.newerSeen).toBe(3);
    // The refused write was not stored: the newer value is still there for everyone.
    expect(await v3.get('t1')).toEqual({ title: 'milk', status: 'done' });
    await Promise.all([oldApp.close(), midApp.close(), newApp.close()]);
  });
});
