import { TypedValues } from '@mittsync/core';
import { tinyAsync, tinyNumber } from '@mittsync/core/testing';
import { describe, expect, it } from 'vitest';
import type { Change, LiveResult } from './live-query';
import { typedWatch } from './typed-watch';

/** A delivery as the untyped live query makes it (only `initial` and `changes` are read). */
function delivery(initial: boolean, changes: [string, unknown][]): LiveResult<unknown> {
  const list: Change<unknown>[] = changes.map(([key, value]) =>
    value === undefined
      ? { key, deleted: true, source: initial ? 'initial' : 'remote' }
      : { key, value, deleted: false, source: initial ? 'initial' : 'remote' },
  );
  return {
    initial,
    changes: list,
    count: list.length,
    size: 0,
    get: () => undefined,
    rows: () => [],
  };
}

const settle = () => new Promise<void>((r) => setTimeout(r, 5));

describe('typedWatch', () => {
  it('passes readable values, drops unreadable ones as if deleted, and reports them', () => {
    const typed = new TypedValues<number>('b', tinyNumber);
    const seen: LiveResult<number>[] = [];
    const deliver = typedWatch(typed, (r) => seen.push(r));
    deliver(
      delivery(true, [
        ['a', 1],
        ['b', 'two'],
        ['c', 3],
      ]),
    );
    expect(seen[0]?.rows()).toEqual([
      { key: 'a', value: 1 },
      { key: 'c', value: 3 },
    ]);
    expect(seen[0]?.size).toBe(2);
    expect(typed.status().invalid).toBe(1);
    // `a` turns unreadable: it leaves the result; `b` is fixed: it enters.
    deliver(
      delivery(false, [
        ['a', 'bad'],
        ['b', 2],
      ]),
    );
    const last = seen[1];
    expect(last?.changes).toEqual([
      { key: 'a', deleted: true, source: 'remote' },
      { key: 'b', value: 2, deleted: false, source: 'remote' },
    ]);
    expect(last?.get('a')).toBeUndefined();
    expect(last?.rows().map((r) => r.key)).toEqual(['b', 'c']);
    expect(last?.size).toBe(2);
    // Deleting the unreadable key clears its report.
    deliver(delivery(false, [['a', undefined]]));
    expect(typed.status().invalid).toBe(0);
  });

  it('with an async validator, delivers in order once each delivery is checked', async () => {
    const typed = new TypedValues<number>('b', tinyAsync(tinyNumber));
    const seen: LiveResult<number>[] = [];
    const deliver = typedWatch(typed, (r) => seen.push(r));
    deliver(delivery(true, [['a', 1]]));
    deliver(delivery(false, [['a', 2]]));
    deliver(delivery(false, [['b', 'x']]));
    deliver(delivery(false, [['a', 4]]));
    expect(seen).toHaveLength(0); // nothing before its checks
    await settle();
    // rows() is a view of the current result, as for untyped live queries.
    expect(seen.map((r) => r.rows())).toEqual(Array(4).fill([{ key: 'a', value: 4 }]));
    expect(seen.map((r) => r.changes.map((c) => c.value))).toEqual([[1], [2], [], [4]]);
    expect(typed.status().lastInvalid).toMatchObject({ key: 'b', reason: 'invalid' });
  });
});
