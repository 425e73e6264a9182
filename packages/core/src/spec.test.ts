import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { scanSpans } from './host-spec';
import { MemoryHostStore } from './host-store';
import type { Value } from './model';
import {
  type KeySpan,
  mergeProjected,
  outsideSpec,
  pageSpec,
  prefixEnd,
  projectValue,
  type ReplicationSpec,
  scopeSpec,
  spansCover,
  spansToSpec,
  spansWithin,
  specCovers,
  specSpans,
  subtractSpans,
  validateSpec,
} from './spec';

// Keys over a small alphabet, with the extremes of the UTF-16 range, so prefixes and ranges
// often share and bound keys.
const char = fc.constantFrom('a', 'b', 'c', '/', '\u0000', '\uffff', '\ud83d\ude00');
const key = fc.array(char, { minLength: 1, maxLength: 4 }).map((cs) => cs.join(''));
const range = fc
  .record({ gte: fc.option(key, { nil: undefined }), lt: fc.option(key, { nil: undefined }) })
  .filter((r) => r.gte === undefined || r.lt === undefined || r.gte < r.lt)
  .map((r) => ({
    ...(r.gte === undefined ? {} : { gte: r.gte }),
    ...(r.lt === undefined ? {} : { lt: r.lt }),
  }));
const spec: fc.Arbitrary<ReplicationSpec> = fc
  .record({
    prefixes: fc.option(fc.array(key, { maxLength: 3 }), { nil: undefined }),
    ranges: fc.option(fc.array(range, { maxLength: 3 }), { nil: undefined }),
  })
  .map((s) => ({
    ...(s.prefixes === undefined ? {} : { prefixes: s.prefixes }),
    ...(s.ranges === undefined ? {} : { ranges: s.ranges }),
  }));

/** The spec's meaning, straight from its definition. */
function naiveCovers(s: ReplicationSpec, k: string): boolean {
  if (s.prefixes === undefined && s.ranges === undefined) return true;
  return (
    (s.prefixes ?? []).some((p) => k.startsWith(p)) ||
    (s.ranges ?? []).some((r) => (r.gte === undefined || k >= r.gte) && (r.lt === undefined || k < r.lt))
  );
}

const spansCoverKey = (spans: readonly KeySpan[], k: string) => spansCover(spans, k);

describe('replication spec matching', () => {
  it('covers exactly the keys under its prefixes or in its ranges', () => {
    fc.assert(
      fc.property(spec, fc.array(key, { maxLength: 20 }), (s, keys) => {
        for (const k of keys) expect(specCovers(s, k)).toBe(naiveCovers(s, k));
      }),
      { numRuns: 500 },
    );
  });

  it('normalizes to sorted, disjoint, non-touching spans', () => {
    fc.assert(
      fc.property(spec, (s) => {
        const spans = specSpans(s);
        for (let i = 1; i < spans.length; i++) {
          const a = spans[i - 1] as KeySpan;
          const b = spans[i] as KeySpan;
          expect(a.hi !== undefined && a.hi < b.lo).toBe(true);
        }
      }),
    );
  });

  it('ends a prefix at the first string after every string that starts with it', () => {
    expect(prefixEnd('ab')).toBe('ac');
    expect(prefixEnd('a\uffff')).toBe('b');
    expect(prefixEnd('\uffff\uffff')).toBeUndefined();
    fc.assert(
      fc.property(key, key, (p, k) => {
        const end = prefixEnd(p);
        const inside = k >= p && (end === undefined || k < end);
        expect(inside).toBe(k.startsWith(p));
      }),
      { numRuns: 500 },
    );
  });

  it('subtracts spans: a key is in a - b iff it is in a and not in b', () => {
    fc.assert(
      fc.property(spec, spec, fc.array(key, { maxLength: 20 }), (a, b, keys) => {
        const rest = subtractSpans(specSpans(a), specSpans(b));
        for (const k of keys) expect(spansCoverKey(rest, k)).toBe(naiveCovers(a, k) && !naiveCovers(b, k));
        // And the result is a valid spec again.
        const again = spansToSpec(rest);
        for (const k of keys) expect(specCovers(again, k)).toBe(spansCoverKey(rest, k));
      }),
      { numRuns: 300 },
    );
  });

  it('tells when a spec lies within another', () => {
    fc.assert(
      fc.property(spec, spec, fc.array(key, { maxLength: 30 }), (a, b, keys) => {
        if (spansWithin(specSpans(a), specSpans(b)))
          for (const k of keys) if (naiveCovers(a, k)) expect(naiveCovers(b, k)).toBe(true);
      }),
      { numRuns: 300 },
    );
    expect(spansWithin(specSpans({ prefixes: ['a/b'] }), specSpans({ prefixes: ['a/'] }))).toBe(true);
    expect(spansWithin(specSpans({ prefixes: ['a'] }), specSpans({ prefixes: ['a/'] }))).toBe(false);
  });
});

describe('scanning a host store by spec', () => {
  it('reads the same entries as filtering a full scan, page by page', () => {
    fc.assert(
      fc.property(
        spec,
        fc.uniqueArray(key, { maxLength: 40 }),
        fc.integer({ min: 1, max: 7 }),
        (s, keys, limit) => {
          const store = new MemoryHostStore();
          for (const [i, k] of keys.entries()) store.putEntry({ key: k, hlc: `h${i}`, seq: i + 1, value: i });
          const want = [...keys].sort().filter((k) => naiveCovers(s, k));
          const got: string[] = [];
          let after: string | undefined;
          for (let guard = 0; guard < 100; guard++) {
            const page = scanSpans(store, false, specSpans(s), 0, after, undefined, limit);
            got.push(...page.map((e) => e.key));
            const last = page[page.length - 1];
            if (page.length < limit || last === undefined) break;
            after = last.key;
          }
          expect(got).toEqual(want);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('projection', () => {
  const value: fc.Arbitrary<Value> = fc.dictionary(fc.constantFrom('a', 'b', 'c', 'd'), fc.integer(), {
    maxKeys: 4,
  });
  const fields: fc.Arbitrary<string[]> = fc.uniqueArray(fc.constantFrom('a', 'b', 'c', 'd'), {
    minLength: 1,
    maxLength: 4,
  });

  it('merges a projected write: its fields from the write, the others from the stored value', () => {
    fc.assert(
      fc.property(fields, value, value, (fs, stored, written) => {
        const w = projectValue(fs, written) as Record<string, Value>;
        const merged = mergeProjected(fs, stored, w) as Record<string, Value>;
        // What the writer sees afterwards is exactly what it wrote...
        expect(projectValue(fs, merged)).toEqual(w);
        // ...and what it cannot see is unchanged.
        for (const k of Object.keys(stored as object))
          if (!fs.includes(k)) expect(merged[k]).toEqual((stored as Record<string, Value>)[k]);
        for (const k of Object.keys(merged))
          expect(fs.includes(k) || Object.hasOwn(stored as object, k)).toBe(true);
      }),
    );
  });

  it('projects a value that is not an object to {}', () => {
    expect(projectValue(['a'], 5)).toEqual({});
    expect(projectValue(['a'], [1])).toEqual({});
    expect(projectValue(undefined, 5)).toBe(5);
  });

  it('refuses writes a projection cannot make, and keys outside the spec', () => {
    const s: ReplicationSpec = { prefixes: ['u/'], fields: ['a'] };
    expect(outsideSpec(s, { key: 'v/1', kind: 'set', value: { a: 1 } })?.code).toBe('OUTSIDE_SPEC');
    expect(outsideSpec(s, { key: 'u/1', kind: 'del' })?.code).toBe('OUTSIDE_SPEC');
    expect(outsideSpec(s, { key: 'u/1', kind: 'set', value: 3 })?.code).toBe('OUTSIDE_SPEC');
    expect(outsideSpec(s, { key: 'u/1', kind: 'set', value: { a: 1, b: 2 } })?.detail).toMatchObject({
      field: 'b',
    });
    expect(outsideSpec(s, { key: 'u/1', kind: 'set', value: { a: 1 } })).toBeUndefined();
    expect(outsideSpec(undefined, { key: 'x', kind: 'del' })).toBeUndefined();
  });
});

describe('spec validation and scopes', () => {
  it('refuses malformed specs with BAD_MESSAGE', () => {
    for (const bad of [
      null,
      [],
      { prefixes: 'a' },
      { prefixes: [''] },
      { ranges: [{ gte: 'b', lt: 'a' }] },
      { ranges: [{ from: 'a' }] },
      { fields: [] },
      { fields: ['a', 'a'] },
      { fields: ['__proto__'] },
      { other: 1 },
      { prefixes: Array.from({ length: 33 }, (_, i) => `p${i}`) },
      { prefixes: ['x'.repeat(600)] },
      { prefixes: Array.from({ length: 20 }, (_, i) => `${i}`.padEnd(300, 'x')) },
    ]) {
      expect(() => validateSpec(bad), JSON.stringify(bad)?.slice(0, 60)).toThrowError(
        expect.objectContaining({ code: 'BAD_MESSAGE' }),
      );
    }
    expect(validateSpec({ prefixes: ['a/'], fields: ['x'], ranges: [{ lt: 'z' }] })).toEqual({
      prefixes: ['a/'],
      ranges: [{ lt: 'z' }],
      fields: ['x'],
    });
  });

  it('gives a spec-less subscription the token’s prefixes, and refuses one reaching outside', () => {
    expect(scopeSpec(undefined, undefined)).toBeUndefined();
    expect(scopeSpec(undefined, ['u/'])).toEqual({ prefixes: ['u/'] });
    expect(scopeSpec({ fields: ['a'] }, ['u/'])).toEqual({ prefixes: ['u/'], fields: ['a'] });
    expect(scopeSpec({ prefixes: ['u/1'] }, ['u/'])).toEqual({ prefixes: ['u/1'] });
    expect(() => scopeSpec({ prefixes: ['v/'] }, ['u/'])).toThrowError(
      expect.objectContaining({ code: 'FORBIDDEN' }),
    );
    expect(() => scopeSpec({ ranges: [{ gte: 'u/' }] }, ['u/'])).toThrowError(
      expect.objectContaining({ code: 'FORBIDDEN' }),
    );
  });

  it('narrows a page to the request’s keys within the subscription’s, with its projection', () => {
    expect(pageSpec(undefined, { prefixes: ['a'] })).toEqual({ prefixes: ['a'] });
    expect(pageSpec({ prefixes: ['ab'], fields: ['x'] }, { prefixes: ['a'], fields: ['y'] })).toEqual({
      prefixes: ['ab'],
      fields: ['y'],
    });
    expect(() => pageSpec({ prefixes: ['b'] }, { prefixes: ['a'] })).toThrowError(
      expect.objectContaining({ code: 'FORBIDDEN' }),
    );
    expect(() => pageSpec({ fields: ['x'] }, { prefixes: ['a'] })).toThrowError(
      expect.objectContaining({ code: 'FORBIDDEN' }),
    );
  });
});
