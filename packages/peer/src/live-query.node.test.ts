import type { Entry } from '@mittsync/core';
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { LiveQueryState } from './live-query';
import type { ClientStatus, HostEvent } from './worker/api';
import { decodeEvents, encodeEvents } from './worker/event-frame';
import { LiveMirror, STATUS_EVERY_MS, WatchHub } from './worker/watchers';

const set = (key: string, hlc: string, value: unknown): Entry => ({
  key,
  hlc,
  seq: 0,
  value: value as never,
});
const del = (key: string, hlc: string): Entry => ({ key, hlc, seq: 0, deleted: true });

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

  it('numbers keys from 0 at each snapshot and sends a key only with its first delivery', () => {
    const m = new LiveMirror();
    const ids = (b: Uint32Array) => [...b];
    const snap = m.snapshot([set('a', 'h1', 1), set('b', 'h1', 2)]);
    expect(ids(snap.i)).toEqual([0, 1]);
    expect(snap.k).toBe('ab');
    const chg = m.change([set('b', 'h2', 3), set('c', 'h2', 4), del('a', 'h2')]);
    if (chg === null) throw new Error('expected a delivery');
    expect(ids(chg.i)).toEqual([1, 2, 0]);
    expect([chg.k, [...chg.kl]]).toEqual(['c', [1]]);
    expect([...chg.x]).toEqual([0, 0, 1]);
    expect(m.change([set('c', 'h1', 'old')])).toBeNull();
    const again = m.snapshot([set('z', 'h3', 9)]);
    expect([ids(again.i), again.k]).toEqual([[0], 'z']);
  });

  it('reads a batch from bytes at any offset, and rejects one that does not add up', () => {
    const m = new LiveMirror();
    const s = new LiveQueryState<unknown>();
    const bytes = encodeEvents([
      { t: 'snap', w: 7, b: m.snapshot([set('a', 'h1', 'one'), set('b', 'h1', [2])]) },
    ]);
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    const [ev] = decodeEvents(shifted.subarray(1));
    if (ev?.t !== 'snap') throw new Error('expected a snapshot');
    expect(ev.w).toBe(7);
    expect(s.snapshot(ev.b).rows()).toEqual([
      { key: 'a', value: 'one' },
      { key: 'b', value: [2] },
    ]);
    for (const cut of [0, 4, 12, bytes.length - 4])
      expect(() => decodeEvents(bytes.subarray(0, cut))).toThrow(
        expect.objectContaining({ code: 'BAD_FRAME' }),
      );
    const unknown = bytes.slice();
    new Uint32Array(unknown.buffer)[1] = 9;
    expect(() => decodeEvents(unknown)).toThrow(expect.objectContaining({ code: 'BAD_FRAME' }));
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

  it('round-trips batches of status and entry events, any keys and values', () => {
    const status = {
      connection: 'online',
      buckets: [],
      pending: 3,
      persistent: true,
    } as unknown as ClientStatus;
    const entry = fc.record({
      key: fc.string({ unit: 'binary', minLength: 1, maxLength: 12 }),
      value: fc.oneof(fc.string(), fc.integer(), fc.constant(null), fc.array(fc.boolean())),
      deleted: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.array(fc.array(entry, { maxLength: 20 }), { maxLength: 4 }),
        fc.boolean(),
        (batches, withStatus) => {
          const m = new LiveMirror();
          let hlc = 0;
          const toEntries = (es: (typeof batches)[number]) => {
            hlc++;
            const h = String(hlc).padStart(6, '0');
            return es.map((e) => (e.deleted ? del(e.key, h) : set(e.key, h, e.value)));
          };
          const events: HostEvent[] = [];
          if (withStatus) events.push({ t: 'status', s: status });
          events.push({
            t: 'snap',
            w: 0,
            b: m.snapshot(toEntries(batches[0] ?? []).filter((e) => !e.deleted)),
          });
          for (const [n, b] of batches.slice(1).entries()) {
            const cols = m.change(toEntries(b));
            if (cols !== null)
              events.push({ t: 'chg', w: n + 1, b: cols, s: n % 2 === 0 ? 'local' : 'remote' });
          }
          const plain = (evs: HostEvent[]) =>
            evs.map((ev) =>
              ev.t === 'status'
                ? ev
                : {
                    ...ev,
                    b: {
                      ...ev.b,
                      i: [...ev.b.i],
                      kl: [...ev.b.kl],
                      x: [...ev.b.x],
                      v: [...ev.b.v],
                      o: [...ev.b.o],
                    },
                  },
            );
          expect(plain(decodeEvents(encodeEvents(events)))).toEqual(plain(events));
        },
      ),
    );
  });
});

describe('WatchHub status events', () => {
  const bucket = (pending: number, phase = 'ready') =>
    ({
      bucket: 'b',
      phase,
      ready: phase === 'ready',
      checkpoint: pending,
      epoch: 'e',
      pending,
      progress: { pages: 0, entries: 0, ranges: 0, rangesDone: 0 },
      mitt: { ops: 0, bytes: 0 },
      verified: 0,
      lastError: null,
    }) as unknown as ClientStatus['buckets'][number];
  const status = (pending: number, phase?: string, connection = 'open') =>
    ({
      replicaId: 'r',
      connection,
      persistent: true,
      hosting: 'shared',
      buckets: [bucket(pending, phase)],
      error: null,
    }) as ClientStatus;

  /** A hub with one tab; returns the statuses the tab received, batch by batch. */
  function hub() {
    const h = new WatchHub(async () => []);
    const got: ClientStatus[][] = [];
    h.addTab('t', (bytes) => got.push(decodeEvents(bytes).flatMap((e) => (e.t === 'status' ? [e.s] : []))));
    return { h, got, pendings: () => got.flat().map((s) => s.buckets[0]?.pending) };
  }

  it('sends counter changes at most every STATUS_EVERY_MS, always ending on the newest', async () => {
    vi.useFakeTimers();
    try {
      const { h, got, pendings } = hub();
      h.status(() => status(0));
      await vi.advanceTimersByTimeAsync(0);
      for (let p = 1; p <= 5; p++) {
        h.status(() => status(p));
        await vi.advanceTimersByTimeAsync(5);
      }
      // The first change went out; the rest wait for the interval, then only the newest goes.
      expect(pendings()).toEqual([0]);
      await vi.advanceTimersByTimeAsync(STATUS_EVERY_MS);
      expect(pendings()).toEqual([0, 5]);
      // The same status again sends nothing.
      h.status(() => status(5));
      await vi.advanceTimersByTimeAsync(STATUS_EVERY_MS * 2);
      expect(got.length).toBe(2);
      // A counter change long after the last one goes out at once.
      h.status(() => status(6));
      await vi.advanceTimersByTimeAsync(0);
      expect(pendings()).toEqual([0, 5, 6]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('sends phase, connection and error changes at once, and stops when the tab leaves', async () => {
    vi.useFakeTimers();
    try {
      const { h, got } = hub();
      h.status(() => status(0, 'joining'));
      await vi.advanceTimersByTimeAsync(1);
      h.status(() => status(0, 'ready'));
      await vi.advanceTimersByTimeAsync(1);
      h.status(() => status(0, 'ready', 'connecting'));
      await vi.advanceTimersByTimeAsync(1);
      expect(got.flat().map((s) => [s.connection, s.buckets[0]?.phase])).toEqual([
        ['open', 'joining'],
        ['open', 'ready'],
        ['connecting', 'ready'],
      ]);
      h.status(() => status(9, 'ready', 'connecting'));
      h.removeTab('t');
      await vi.advanceTimersByTimeAsync(STATUS_EVERY_MS * 2);
      expect(got.length).toBe(3);
    } finally {
      vi.useRealTimers();
    }
  });
});
