import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MittsyncError } from './errors';
import type { Op, Value } from './model';
import {
  checkPushedValue,
  defineSchema,
  issuePath,
  prepareWrite,
  readValue,
  schemaLookup,
  toVersioned,
  unwrapVersion,
  wrapVersion,
} from './schema';
import { tinyArray, tinyAsync, tinyBoolean, tinyNumber, tinyObject, tinyString } from './testing/tiny-schema';
import { TypedValues } from './typed-values';

const order = tinyObject({
  title: tinyString,
  items: tinyArray(tinyObject({ name: tinyString, price: tinyNumber })),
});
const v1 = toVersioned(order);

function thrown(fn: () => unknown): MittsyncError {
  try {
    fn();
  } catch (e) {
    if (e instanceof MittsyncError) return e;
    throw e;
  }
  throw new Error('did not throw');
}

const jsonValue: fc.Arbitrary<Value> = fc.jsonValue() as fc.Arbitrary<Value>;
/** JSON values without the envelope's reserved field anywhere at the top. */
const plainValue = jsonValue.filter(
  (v) => typeof v !== 'object' || v === null || Array.isArray(v) || !('~v' in v),
);

describe('issuePath', () => {
  it('writes paths as code would', () => {
    expect(issuePath({ path: ['items', 2, 'price'] })).toBe('items[2].price');
    expect(issuePath({ path: [{ key: 'items' }, { key: 2 }, 'price'] })).toBe('items[2].price');
    expect(issuePath({ path: ['tags', 'a b', '0'] })).toBe('tags["a b"][0]');
    expect(issuePath({ path: [] })).toBe('');
    expect(issuePath({})).toBe('');
  });

  it('matches a model for any path of identifiers and indices', () => {
    const seg = fc.oneof(fc.nat({ max: 1000 }), fc.stringMatching(/^[a-z_][a-z0-9_]{0,6}$/));
    fc.assert(
      fc.property(fc.array(seg, { maxLength: 8 }), (path) => {
        const model = path
          .map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? k : `.${k}`))
          .join('')
          .replace(/^\./, '');
        expect(issuePath({ path })).toBe(model);
      }),
    );
  });
});

describe('writes', () => {
  it('refuse an invalid value with INVALID_VALUE naming the path', () => {
    const value = {
      title: 'o',
      items: [
        { name: 'a', price: 1 },
        { name: 'b', price: 2 },
        { name: 'c', price: 'x' },
      ],
    };
    const err = thrown(() => prepareWrite(v1, 'orders', 'o1', value));
    expect(err.code).toBe('INVALID_VALUE');
    expect(err.detail?.path).toBe('items[2].price');
    expect(err.message).toContain('items[2].price');
    expect(err.message).toContain('orders/o1');
  });

  it('store a version 1 value as it is and a later one in the envelope', () => {
    const v = { title: 't', items: [] };
    expect(prepareWrite(v1, 'b', 'k', v)).toEqual(v);
    const v3 = defineSchema({ version: 3, schema: order, migrations: { 2: (x) => x, 3: (x) => x } });
    expect(prepareWrite(v3, 'b', 'k', v)).toEqual({ '~v': 3, '~d': v });
  });

  it('handle an async validator: the result is a promise that rejects with the path', async () => {
    const s = toVersioned(tinyAsync(order));
    const bad = prepareWrite(s, 'b', 'k', { title: 1, items: [] });
    expect(bad).toBeInstanceOf(Promise);
    await expect(bad).rejects.toMatchObject({ code: 'INVALID_VALUE', detail: { path: 'title' } });
    await expect(prepareWrite(s, 'b', 'k', { title: 'x', items: [] })).resolves.toEqual({
      title: 'x',
      items: [],
    });
  });
});

describe('the version envelope', () => {
  it('round-trips any value at any version', () => {
    fc.assert(
      fc.property(plainValue, fc.integer({ min: 1, max: 1000 }), (value, version) => {
        expect(unwrapVersion(wrapVersion(version, value))).toEqual({ version, data: value });
      }),
    );
  });

  it('leaves values without an envelope at version 1', () => {
    expect(unwrapVersion({ '~v': 2 })).toEqual({ version: 1, data: { '~v': 2 } });
    expect(unwrapVersion({ '~v': 1, '~d': 3 }).version).toBe(1);
    expect(unwrapVersion({ '~v': 2, '~d': 3, x: 1 }).version).toBe(1);
    expect(unwrapVersion([2, 3]).version).toBe(1);
  });
});

describe('migrations', () => {
  // v1: { name }, v2: { first, last }, v3: { first, last, tags }
  const m2 = (v: { name: string }) => {
    const [first = '', ...rest] = v.name.split(' ');
    return { first, last: rest.join(' ') };
  };
  const m3 = (v: { first: string; last: string }) => ({ ...v, tags: [] as string[] });
  const person = tinyObject({ first: tinyString, last: tinyString, tags: tinyArray(tinyString) });
  const v3 = defineSchema({ version: 3, schema: person, migrations: { 2: m2, 3: m3 } });

  it('read any older value through the chain, in order', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (a, b) => {
        const name = `${a} ${b}`;
        const fromV1 = readValue(v3, { name });
        expect(fromV1).toEqual({ ok: true, version: 1, value: m3(m2({ name })) });
        const fromV2 = readValue(v3, wrapVersion(2, m2({ name })));
        expect(fromV2).toEqual({ ok: true, version: 2, value: m3(m2({ name })) });
        const atV3 = { first: a, last: b, tags: [b] };
        expect(readValue(v3, wrapVersion(3, atV3))).toEqual({ ok: true, version: 3, value: atV3 });
      }),
    );
  });

  it('refuse a newer value without guessing its shape', () => {
    const out = readValue(v3, wrapVersion(4, { first: 'a', last: 'b', tags: [] }));
    expect(out).toMatchObject({ ok: false, reason: 'newer', version: 4 });
  });

  it('report a missing or throwing migration as invalid', () => {
    const gap = defineSchema({ version: 3, schema: person, migrations: { 3: m3 } });
    expect(readValue(gap, { name: 'a b' })).toMatchObject({
      ok: false,
      reason: 'invalid',
      issues: [{ message: expect.stringContaining('no migration to version 2') }],
    });
    expect(readValue(v3, { nom: 1 })).toMatchObject({
      ok: false,
      reason: 'invalid',
      issues: [{ message: expect.stringContaining('migration to version 2 failed') }],
    });
  });

  it('report a migrated value that fails the schema with its path', () => {
    const wrong = defineSchema({
      version: 2,
      schema: person,
      migrations: { 2: (v: object) => ({ ...v, tags: [1] }) },
    });
    expect(readValue(wrong, { first: 'a', last: 'b' })).toMatchObject({
      ok: false,
      reason: 'invalid',
      issues: [{ path: 'tags[0]' }],
    });
  });

  it('refuse bad definitions', () => {
    expect(() => defineSchema({ version: 0, schema: person })).toThrow(MittsyncError);
    expect(() => defineSchema({ version: 2, schema: person, migrations: { 3: m3 } })).toThrow(/migration 3/);
    expect(() => defineSchema({ version: 2, schema: {} as typeof person })).toThrow(/Standard Schema/);
  });
});

describe('the relay check', () => {
  const op = (value: Value | undefined, kind: Op['kind'] = 'set'): Op =>
    kind === 'set'
      ? { origin: 'r1', originSeq: 1, key: 'k', kind, value: value as Value, hlc: 'h' }
      : { origin: 'r1', originSeq: 1, key: 'k', kind, hlc: 'h' };
  const s2 = defineSchema({
    version: 2,
    schema: tinyObject({ title: tinyString, done: tinyBoolean }),
    migrations: { 2: (v: { title: string }) => ({ ...v, done: false }) },
  });

  it('accepts valid and migratable values and deletes', () => {
    expect(checkPushedValue(s2, 'b', op(wrapVersion(2, { title: 't', done: true })))).toBeUndefined();
    expect(checkPushedValue(s2, 'b', op({ title: 't' }))).toBeUndefined();
    expect(checkPushedValue(s2, 'b', op(undefined, 'del'))).toBeUndefined();
  });

  it('refuses invalid and newer values with INVALID_VALUE, async validators with INTERNAL', () => {
    expect(checkPushedValue(s2, 'b', op(wrapVersion(2, { title: 't', done: 'no' })))).toMatchObject({
      code: 'INVALID_VALUE',
      detail: { path: 'done' },
    });
    expect(checkPushedValue(s2, 'b', op(wrapVersion(3, { title: 't' })))?.code).toBe('INVALID_VALUE');
    expect(checkPushedValue(toVersioned(tinyAsync(tinyString)), 'b', op('x'))?.code).toBe('INTERNAL');
  });
});

describe('schemaLookup', () => {
  it('prefers an exact name, then the longest pattern', () => {
    const a = tinyString;
    const b = tinyNumber;
    const c = tinyBoolean;
    const find = schemaLookup({ 'todo:*': a, 'todo:special*': b, 'todo:x': c });
    expect(find('todo:x')?.schema).toBe(c);
    expect(find('todo:special-1')?.schema).toBe(b);
    expect(find('todo:1')?.schema).toBe(a);
    expect(find('other')).toBeUndefined();
    expect(() => schemaLookup({ x: {} as typeof a })).toThrow(/schema for "x"/);
  });
});

describe('TypedValues', () => {
  it('tracks unreadable keys and the newest version seen, and tells listeners once per change', async () => {
    const t = new TypedValues(
      'b',
      defineSchema({ version: 2, schema: tinyString, migrations: { 2: String } }),
    );
    const heard: string[] = [];
    t.onInvalid((r) => heard.push(`${r.key}:${r.reason}:${r.version}`));
    expect(t.read('a', 5)).toMatchObject({ ok: true, value: '5' });
    t.read('b', wrapVersion(2, 7));
    t.read('b', wrapVersion(2, 7));
    t.read('c', wrapVersion(5, 'x'));
    t.read('d', wrapVersion(4, 'x'));
    expect(heard).toEqual(['b:invalid:2', 'c:newer:5', 'd:newer:4']);
    expect(t.status()).toMatchObject({ version: 2, newerSeen: 5, invalid: 3, lastInvalid: { key: 'd' } });
    t.read('b', wrapVersion(2, 'fixed'));
    t.forget('c');
    expect(t.status().invalid).toBe(1);
    expect(t.status().newerSeen).toBe(5);
  });
});

describe('TypedValues against a model', () => {
  it('counts unreadable keys and the newest version seen for any sequence of reads and deletes', () => {
    const event = fc.oneof(
      fc.record({
        key: fc.constantFrom('a', 'b', 'c'),
        version: fc.integer({ min: 1, max: 4 }),
        ok: fc.boolean(),
      }),
      fc.record({ key: fc.constantFrom('a', 'b', 'c'), deleted: fc.constant(true as const) }),
    );
    fc.assert(
      fc.property(fc.array(event, { maxLength: 40 }), (events) => {
        const t = new TypedValues(
          'b',
          defineSchema({ version: 2, schema: tinyNumber, migrations: { 2: (x) => x } }),
        );
        const model = new Map<string, boolean>();
        let newer: number | null = null;
        for (const e of events) {
          if ('deleted' in e) {
            t.forget(e.key);
            model.delete(e.key);
            continue;
          }
          const out = t.read(e.key, wrapVersion(e.version, e.ok ? 1 : 'no'));
          const readable = e.version <= 2 && e.ok;
          expect(out).toMatchObject({ ok: readable });
          if (e.version > 2) newer = Math.max(newer ?? 0, e.version);
          if (readable) model.delete(e.key);
          else model.set(e.key, true);
        }
        expect(t.status().invalid).toBe(model.size);
        expect(t.status().newerSeen).toBe(newer);
      }),
    );
  });
});
