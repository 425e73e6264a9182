import { describe, expect, it, vi } from 'vitest';
import { LiveQueryState } from '../live-query';
import { del, set } from '../testing/entries';
import type { ClientStatus } from './api';
import { decodeEvents } from './event-frame';
import { LiveMirror, STATUS_EVERY_MS, WatchHub } from './watchers';

describe('LiveMirror (the worker-side copy of a live query)', () => {
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
});

describe('WatchHub live queries', () => {
  it('follows the initial result with the changes committed while it was read, each once, in order', async () => {
    const stored = [set('a', 'h1', 1)];
    let finishRead = () => {};
    const reading = new Promise<void>((resolve) => {
      finishRead = resolve;
    });
    const h = new WatchHub(async () => {
      const snapshot = [...stored];
      await reading;
      return snapshot;
    });
    const state = new LiveQueryState<number>();
    const seen: string[] = [];
    h.addTab('t', (bytes) => {
      for (const ev of decodeEvents(bytes)) {
        if (ev.t === 'status') continue;
        const r = ev.t === 'snap' ? state.snapshot(ev.b) : state.apply(ev.b, ev.s);
        for (const c of r?.changes ?? []) seen.push(`${c.source} ${c.key}=${c.value}`);
      }
    });
    const watching = h.watch('t', 1, 'b', { prefix: '' });
    // Committed while the snapshot is read: held, then sent after it...
    h.onChange('b', [set('b', 'h2', 2)], 'local');
    // ...but not what the snapshot already has (committed before the read, announced after).
    h.onChange('b', [set('a', 'h1', 1)], 'local');
    h.onChange('b', [set('a', 'h3', 3), set('c', 'h3', 3)], 'remote');
    finishRead();
    await watching;
    h.onChange('b', [set('c', 'h4', 4)], 'local');
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(seen).toEqual(['initial a=1', 'local b=2', 'remote a=3', 'remote c=3', 'local c=4']);
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
