import type { Entry } from '@mittsync/core';
import { describe, expect, it } from 'vitest';
import { LiveQueryState } from './live-query';
import { u32At, u32Bytes } from './worker/columns';
import { LiveMirror } from './worker/watchers';

const set = (key: string, hlc: string, value: unknown): Entry => ({
  key,
  hlc,
  seq: 0,
  value: value as never,
});
const del = (key: string, hlc: string): Entry => ({ key, hlc, seq: 0, deleted: true });

/** The worker's mirror and the page's state of one live query, wired as the hub wires them. */
function pair() {
  const m = new LiveMirror();
  const s = new LiveQueryState<unknown>();
  return {
    snapshot: (entries: Entry[]) => s.snapshot(m.snapshot(entries)),
    apply: (entries: Entry[], source: 'local' | 'remote') => {
      const cols = m.change(entries);
      return cols === null ? null : s.apply(cols, source);
    },
  };
}

describe('LiveQueryState (page side of a live query) and its worker-side mirror', () => {
  it('applies deliveries in order, skips versions it has, and keeps each delivery its own changes', () => {
    const s = pair();
    const snap = s.snapshot([set('a', 'h1', 1), set('b', 'h1', { x: 'b' })]);
    expect(snap.initial).toBe(true);
    expect(snap.rows()).toEqual([
      { key: 'a', value: 1 },
      { key: 'b', value: { x: 'b' } },
    ]);
    const first = s.apply([set('a', 'h2', 2), set('b', 'h0', 'stale'), set('c', 'h2', 3)], 'remote');
    expect(first?.count).toBe(2);
    expect(first?.size).toBe(3);
    // A delivery holding only versions already seen changes nothing.
    expect(s.apply([set('a', 'h2', 2), set('c', 'h1', 'old')], 'local')).toBeNull();
    const second = s.apply([set('a', 'h3', 'three'), del('b', 'h3')], 'local');
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
    expect(s.apply([set('b', 'h4', 'back')], 'remote')?.rows()).toEqual([
      { key: 'a', value: 'three' },
      { key: 'b', value: 'back' },
      { key: 'c', value: 3 },
    ]);
  });

  it('compares versions as strings do, whatever their lengths', () => {
    const s = pair();
    s.snapshot([set('k', 'abc', 1)]);
    expect(s.apply([set('k', 'ab', 2)], 'remote')).toBeNull();
    expect(s.apply([set('k', 'abcd', 3)], 'remote')?.get('k')).toBe(3);
    expect(s.apply([set('k', 'abd', 4)], 'remote')?.get('k')).toBe(4);
  });

  it('numbers keys from 0 at each snapshot and sends a key only with its first delivery', () => {
    const m = new LiveMirror();
    const ids = (b: Uint8Array) => Array.from({ length: b.length / 4 }, (_, j) => u32At(b, j));
    const snap = m.snapshot([set('a', 'h1', 1), set('b', 'h1', 2)]);
    expect(ids(snap.i)).toEqual([0, 1]);
    expect(snap.k).toBe('ab');
    const chg = m.change([set('b', 'h2', 3), set('c', 'h2', 4), del('a', 'h2')]);
    if (chg === null) throw new Error('expected a delivery');
    expect(ids(chg.i)).toEqual([1, 2, 0]);
    expect([chg.k, chg.kl]).toEqual(['c', [1]]);
    expect([...chg.x]).toEqual([0, 0, 1]);
    expect(m.change([set('c', 'h1', 'old')])).toBeNull();
    const again = m.snapshot([set('z', 'h3', 9)]);
    expect([ids(again.i), again.k]).toEqual([[0], 'z']);
  });

  it('reads value ends and slots from bytes at any offset of a decoded frame', () => {
    const m = new LiveMirror();
    const s = new LiveQueryState<unknown>();
    const shift = (b: Uint8Array) => {
      const out = new Uint8Array(b.length + 1);
      out.set(b, 1);
      return out.subarray(1);
    };
    const c = m.snapshot([set('a', 'h1', 'one'), set('b', 'h1', [2])]);
    const r = s.snapshot({ ...c, i: shift(c.i), o: shift(c.o) });
    expect(r.rows()).toEqual([
      { key: 'a', value: 'one' },
      { key: 'b', value: [2] },
    ]);
  });

  it('round-trips Uint32 columns through bytes, up to 2^32 - 1', () => {
    const values = [0, 1, 255, 256, 65_535, 16_777_216, 2 ** 31, 2 ** 32 - 1];
    const b = u32Bytes(values);
    expect(values.map((_, j) => u32At(b, j))).toEqual(values);
  });
});
