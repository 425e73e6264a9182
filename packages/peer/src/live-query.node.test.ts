import type { Entry } from '@mittsync/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LiveQueryState } from './live-query';
import { del, set } from './testing/entries';
import type { HostEvent } from './worker/api';
import { decodeEvents, encodeEvents } from './worker/event-frame';
import { LiveMirror } from './worker/watchers';

/** One event through the bytes the worker sends the page. */
function wire<E extends HostEvent>(ev: E): E {
  return decodeEvents(encodeEvents([ev]))[0] as E;
}

/** The worker's mirror and the page's state of one live query, wired as the hub wires them. */
function pair() {
  const m = new LiveMirror();
  const s = new LiveQueryState<unknown>();
  return {
    snapshot: (entries: Entry[]) => s.snapshot(wire({ t: 'snap', w: 1, b: m.snapshot(entries) }).b),
    apply: (entries: Entry[], source: 'local' | 'remote') => {
      const cols = m.change(entries);
      return cols === null ? null : s.apply(wire({ t: 'chg', w: 1, b: cols, s: source }).b, source);
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

  it('holds what a plain map holds, through snapshots, deletes and any number of keys', () => {
    const op = fc.record({
      key: fc.integer({ min: 0, max: 150 }),
      value: fc.option(fc.integer(), { nil: undefined }),
    });
    fc.assert(
      fc.property(
        fc.array(fc.array(op, { minLength: 30, maxLength: 120 }), { maxLength: 8 }),
        fc.integer({ min: 0, max: 7 }),
        (batches, resnapAt) => {
          const s = pair();
          const model = new Map<string, number>();
          let hlc = 0;
          s.snapshot([]);
          for (const [n, batch] of batches.entries()) {
            hlc++;
            const h = String(hlc).padStart(6, '0');
            // One write per key per batch (the last), as a commit delivers them.
            const last = new Map(batch.map((w) => [`k${String(w.key).padStart(3, '0')}`, w.value]));
            for (const [key, value] of last) value === undefined ? model.delete(key) : model.set(key, value);
            const entries = [...last].map(([key, value]) =>
              value === undefined ? del(key, h) : set(key, h, value),
            );
            const r =
              n === resnapAt
                ? s.snapshot([...model].map(([key, value]) => set(key, h, value)))
                : s.apply(entries, 'remote');
            if (r === null) continue;
            expect(r.size).toBe(model.size);
            expect(r.rows()).toEqual(
              [...model].sort(([a], [b]) => (a < b ? -1 : 1)).map(([key, value]) => ({ key, value })),
            );
            for (const key of last.keys()) expect(r.get(key)).toBe(model.get(key));
          }
        },
      ),
    );
  });

  it('rejects a delivery naming a slot it was never given a key for, changing nothing', () => {
    const m = new LiveMirror();
    const s = new LiveQueryState<unknown>();
    const snap = s.snapshot(m.snapshot([set('a', 'h1', 1)]));
    const bad = {
      i: Uint32Array.of(0, 5),
      k: '',
      kl: new Uint32Array(0),
      x: new Uint8Array(2),
      v: new Uint8Array(0),
      o: new Uint32Array(2),
    };
    expect(() => s.apply(bad, 'remote')).toThrow(expect.objectContaining({ code: 'BAD_FRAME' }));
    expect(snap.get('a')).toBe(1);
  });
});
