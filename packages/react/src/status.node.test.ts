import type { BucketStatus, ClientStatus } from '@mittsync/peer';
import { describe, expect, it } from 'vitest';
import { StatusStore, summarize } from './status';

const bucket = (name: string, over: Partial<BucketStatus> = {}): BucketStatus => ({
  bucket: name,
  policy: 'replica',
  phase: 'ready',
  ready: true,
  checkpoint: 1,
  epoch: 'e',
  pending: 0,
  progress: { pages: 0, entries: 0, ranges: 0, rangesDone: 0 },
  mitt: { ops: 0, bytes: 0 },
  verified: 0,
  lastError: null,
  ...over,
});

const status = (buckets: BucketStatus[], over: Partial<ClientStatus> = {}): ClientStatus => ({
  replicaId: 'r',
  connection: 'open',
  persistent: true,
  hosting: 'shared',
  buckets,
  error: null,
  ...over,
});

/** A client stand-in: a status field and its listeners. */
function fakeClient(initial: ClientStatus | null) {
  const listeners = new Set<(s: ClientStatus) => void>();
  const c = {
    status: initial,
    onStatus(l: (s: ClientStatus) => void) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    emit(s: ClientStatus) {
      c.status = s;
      for (const l of listeners) l(s);
    },
  };
  return c;
}

describe('summarize', () => {
  it('reads one bucket, or sums over all of them', () => {
    const s = status([
      bucket('a', { pending: 2 }),
      bucket('b', { phase: 'joining', ready: false, pending: 1, lastError: { code: 'X', message: 'm' } }),
    ]);
    expect(summarize(s, 'b')).toEqual({
      connection: 'open',
      phase: 'joining',
      ready: false,
      pending: 1,
      lastError: { code: 'X', message: 'm' },
      persistent: true,
    });
    expect(summarize(s, undefined)).toMatchObject({
      phase: null,
      ready: false,
      pending: 3,
      lastError: { code: 'X' },
    });
    expect(summarize(s, 'missing')).toMatchObject({ phase: null, ready: false, pending: 0, lastError: null });
    expect(summarize(null, 'a')).toMatchObject({ connection: 'connecting', ready: false });
  });

  it("prefers the client's storage error for the whole client", () => {
    const s = status([bucket('a', { lastError: { code: 'X', message: 'm' } })], {
      error: { code: 'STORAGE_LOST', message: 'gone' },
    });
    expect(summarize(s, undefined).lastError?.code).toBe('STORAGE_LOST');
  });
});

describe('StatusStore', () => {
  it('keeps its snapshot object while the summary is unchanged', () => {
    const c = fakeClient(status([bucket('a'), bucket('b')]));
    const store = new StatusStore(c, 'a');
    let calls = 0;
    const stop = store.subscribe(() => calls++);
    const first = store.getSnapshot();
    c.emit(status([bucket('a', { checkpoint: 9 }), bucket('b', { pending: 4 })])); // counters elsewhere
    expect(store.getSnapshot()).toBe(first);
    c.emit(status([bucket('a', { pending: 1 }), bucket('b')]));
    const second = store.getSnapshot();
    expect(second).not.toBe(first);
    expect(second.pending).toBe(1);
    expect(calls).toBe(2);
    stop();
    c.emit(status([bucket('a', { pending: 2 })]));
    expect(calls).toBe(2);
  });
});
