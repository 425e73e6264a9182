import type { Entry } from '@mittsync/core';
import { describe, expect, it } from 'vitest';
import { LiveQueryState } from './live-query';
import { toColumns } from './worker/watchers';

const set = (key: string, hlc: string, value: unknown): Entry => ({
  key,
  hlc,
  seq: 0,
  value: value as never,
});
const del = (key: string, hlc: string): Entry => ({ key, hlc, seq: 0, deleted: true });

describe('LiveQueryState (page side of a live query)', () => {
  it('applies deliveries in order, skips versions it has, and keeps each delivery its own changes', () => {
    const s = new LiveQueryState<unknown>();
    const snap = s.snapshot(toColumns([set('a', 'h1', 1), set('b', 'h1', { x: 'b' })]));
    expect(snap.initial).toBe(true);
    expect(snap.rows()).toEqual([
      { key: 'a', value: 1 },
      { key: 'b', value: { x: 'b' } },
    ]);
    const first = s.apply(
      toColumns([set('a', 'h2', 2), set('b', 'h0', 'stale'), set('c', 'h2', 3)]),
      'remote',
    );
    expect(first?.count).toBe(2);
    expect(first?.size).toBe(3);
    // A delivery holding only versions already seen changes nothing.
    expect(s.apply(toColumns([set('a', 'h2', 2), set('c', 'h1', 'old')]), 'local')).toBeNull();
    const second = s.apply(toColumns([set('a', 'h3', 'three'), del('b', 'h3')]), 'local');
    expect(second?.size).toBe(2);
    expect(second?.get('b')).toBeUndefined();
    expect(second?.changes).toEqual([
      { key: 'a', value: 'three', deleted: false, source: 'local' },
      { key: 'b', deleted: true, source: 'local' },
    ]);
    // Read after later deliveries, the first one still reports what it changed.
    expect(first?.changes).toEqual([
      { key: 'a', value: 2, deleted: false, source: 'remote' },
      { key: 'c', value: 3, deleted: false, source: 'remote' },
    ]);
    // Views show the current result.
    expect(first?.get('a')).toBe('three');
    expect(s.apply(toColumns([set('b', 'h4', 'back')]), 'remote')?.rows()).toEqual([
      { key: 'a', value: 'three' },
      { key: 'b', value: 'back' },
      { key: 'c', value: 3 },
    ]);
  });

  it('compares versions as strings do, whatever their lengths', () => {
    const s = new LiveQueryState<unknown>();
    s.snapshot(toColumns([set('k', 'abc', 1)]));
    expect(s.apply(toColumns([set('k', 'ab', 2)]), 'remote')).toBeNull();
    expect(s.apply(toColumns([set('k', 'abcd', 3)]), 'remote')?.get('k')).toBe(3);
    expect(s.apply(toColumns([set('k', 'abd', 4)]), 'remote')?.get('k')).toBe(4);
  });
});
