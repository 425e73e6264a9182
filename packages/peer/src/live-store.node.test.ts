import { describe, expect, it } from 'vitest';
import type { Change, Row } from './live-query';
import { patchRows, queryKey } from './live-store';

const row = (key: string, value: number): Row<number> => ({ key, value });
const put = (key: string, value: number): Change<number> => ({ key, value, deleted: false, source: 'local' });
const del = (key: string): Change<number> => ({ key, deleted: true, source: 'remote' });

describe('patchRows', () => {
  it('inserts, replaces and deletes in key order, keeping untouched rows as they were', () => {
    const rows = [row('a', 1), row('c', 3), row('e', 5), row('g', 7)];
    const out = patchRows(rows, [put('f', 6), del('c'), put('a', 10), put('h', 8), put('0', 0)]);
    expect(out).toEqual([row('0', 0), row('a', 10), row('e', 5), row('f', 6), row('g', 7), row('h', 8)]);
    expect(out[2]).toBe(rows[2]);
    expect(out[4]).toBe(rows[3]);
    expect(rows.map((r) => r.key)).toEqual(['a', 'c', 'e', 'g']); // the input is not changed
  });

  it('takes the last change of a key named twice, and ignores deletes of absent keys', () => {
    const out = patchRows([row('b', 2)], [put('a', 1), del('a'), del('zz'), put('b', 3), put('b', 4)]);
    expect(out).toEqual([row('b', 4)]);
  });
});

describe('queryKey', () => {
  it('is equal for equal queries whatever their property order, and differs otherwise', () => {
    expect(queryKey({ prefix: 'p', limit: 3 })).toBe(queryKey({ limit: 3, prefix: 'p' }));
    expect(queryKey({ end: 'z', start: 'a' })).toBe(queryKey({ start: 'a', end: 'z' }));
    const all = [
      queryKey({ key: 'p' }),
      queryKey({ keys: ['p'] }),
      queryKey({ prefix: 'p' }),
      queryKey({ prefix: 'p', limit: 1 }),
      queryKey({ start: 'p' }),
      queryKey({ end: 'p' }),
      queryKey({}),
    ];
    expect(new Set(all).size).toBe(all.length);
  });
});
