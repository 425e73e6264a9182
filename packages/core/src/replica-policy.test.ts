import { describe, expect, it } from 'vitest';
import { columnEntries } from './columns';
import { MittsyncError } from './errors';
import { MemoryReplicaStorage } from './memory-storage';
import type { ServerMessage } from './protocol';
import { Harness } from './testing/harness';

const settle = () => new Promise<void>((r) => setImmediate(r));

/** Counts the entries the relay sends `replicaId` in pages and live deliveries, from now on. */
function countTransferred(h: Harness, replicaId: string): { entries: number; keys: string[] } {
  const seen = { entries: 0, keys: [] as string[] };
  h.relay.filter = (dir, m, to) => {
    if (dir !== 'out' || to !== replicaId) return 'pass';
    const msg = m as ServerMessage;
    if (msg.type === 'page') {
      const entries = msg.cols === undefined ? msg.entries : columnEntries(msg.cols);
      seen.entries += entries.length;
      seen.keys.push(...entries.map((e) => e.key));
    } else if (msg.type === 'deliver') {
      seen.entries += msg.ops.length;
      seen.keys.push(...msg.ops.map((o) => o.key));
    }
    return 'pass';
  };
  return seen;
}

/** Awaits `p` while virtual time runs (a relay-level ack needs the network). */
async function acked<T>(h: Harness, p: Promise<T>): Promise<T> {
  await h.run(200);
  return p;
}

async function outcome(p: Promise<unknown>): Promise<string> {
  return p.then(
    () => 'ok',
    (e: unknown) => (e instanceof MittsyncError ? e.code : String(e)),
  );
}

describe('Replica policies', () => {
  it('readOnly: refuses a local write at once with READ_ONLY, and still receives live writes', async () => {
    const h = new Harness(settle);
    const w = await h.open('rW');
    const r = await h.open('rR');
    await r.replica.openBucket('b', { policy: 'readOnly' });
    await w.replica.openBucket('b');
    await h.run(200);
    // Rejected before any time passes: no relay round trip is involved.
    expect(await outcome(r.replica.put('b', 'k', 1))).toBe('READ_ONLY');
    expect(await outcome(r.replica.transact('b', [{ key: 'k', delete: true }]))).toBe('READ_ONLY');
    expect(await r.replica.get('b', 'k')).toBeUndefined();
    expect(r.replica.status('b')).toMatchObject({ policy: 'readOnly', pending: 0, phase: 'ready' });
    await acked(h, w.replica.put('b', 'x', 'from writer', { ack: 'relay' }));
    await h.run(100);
    expect((await r.replica.get('b', 'x'))?.value).toBe('from writer');
    expect(r.sent.filter((m) => m.type === 'push')).toEqual([]);
  });

  it('readOnly: is not a writer in a later join’s state flush', async () => {
    const h = new Harness(settle, { flushTimeoutMs: 10_000 });
    const r = await h.open('rR');
    await r.replica.openBucket('b', { policy: 'readOnly' });
    await h.run(200);
    const markers: string[] = [];
    h.relay.filter = (dir, m, to) => {
      if (dir === 'out' && m.type === 'marker' && to !== null) markers.push(to);
      return 'pass';
    };
    const j = await h.open('rJ');
    await j.replica.openBucket('b');
    await h.run(200);
    const info = await j.replica.whenReady('b');
    expect(markers).toEqual([]);
    expect(info.covered).toEqual([]);
    expect(info.flush).toBe('done');
  });

  it('copy: joins with a state flush, then detaches from the live stream', async () => {
    const h = new Harness(settle);
    const w = await h.open('rW');
    await w.replica.openBucket('b');
    await w.replica.transact('b', [
      { key: 'a', value: 1 },
      { key: 'b', value: 2 },
    ]);
    await h.run(200);
    const c = await h.open('rC');
    await c.replica.openBucket('b', { policy: 'copy' });
    await h.run(300);
    const info = await c.replica.whenReady('b');
    expect(info.flush).toBe('done');
    expect(info.covered).toEqual(['rW']);
    expect(c.sent.filter((m) => m.bucket === 'b').map((m) => m.type)).toContain('unsub');
    expect(c.replica.status('b')).toMatchObject({ policy: 'copy', phase: 'detached', ready: true });
    const checkpoint = c.replica.status('b')?.checkpoint;
    await acked(h, w.replica.put('b', 'a', 'later', { ack: 'relay' }));
    await h.run(2_000);
    // Detached: the later write never reaches it, and it keeps its checkpoint.
    expect((await c.replica.get('b', 'a'))?.value).toBe(1);
    expect(c.replica.status('b')?.checkpoint).toBe(checkpoint);
    expect(h.relay.hosts.get('b')?.subscriberCount).toBe(1); // the writer only
  });

  it('copy: refresh resumes from the checkpoint and transfers only the dirty set', async () => {
    const h = new Harness(settle);
    const w = await h.open('rW');
    await w.replica.openBucket('b');
    await w.replica.transact(
      'b',
      Array.from({ length: 100 }, (_, i) => ({ key: `k${String(i).padStart(3, '0')}`, value: i })),
    );
    await h.run(200);
    const c = await h.open('rC');
    const joined = countTransferred(h, 'rC');
    await c.replica.openBucket('b', { policy: 'copy' });
    await h.run(500);
    expect(joined.entries).toBe(100);
    const checkpoint = c.replica.status('b')?.checkpoint as number;
    await w.replica.transact('b', [
      { key: 'k005', value: 'changed' },
      { key: 'k050', value: 'changed' },
      { key: 'k099', delete: true },
      { key: 'new', value: 'added' },
    ]);
    await h.run(200);
    const refreshed = countTransferred(h, 'rC');
    const done = c.replica.refresh('b');
    await h.run(500);
    const info = await done;
    expect(refreshed.entries).toBe(4);
    expect(refreshed.keys.sort()).toEqual(['k005', 'k050', 'k099', 'new']);
    const subs = c.sent.filter((m) => m.type === 'sub');
    expect(subs[subs.length - 1]?.since).toBe(checkpoint);
    expect(info.checkpoint).toBeGreaterThan(checkpoint);
    expect(info.flush).toBe('done');
    expect((await c.replica.get('b', 'k005'))?.value).toBe('changed');
    expect(await c.replica.get('b', 'k099')).toBeUndefined();
    expect((await c.replica.get('b', 'new'))?.value).toBe('added');
    expect((await c.replica.scan('b', {})).length).toBe(100);
    expect(c.replica.status('b')?.phase).toBe('detached');
  });

  it('copy: local writes are a fork, stored and readable, never pushed; refresh merges by LWW', async () => {
    const h = new Harness(settle);
    const w = await h.open('rW');
    await w.replica.transact('b', [
      { key: 'mine', value: 'relay' },
      { key: 'theirs', value: 'relay' },
    ]);
    await h.run(200);
    const c = await h.open('rC');
    await c.replica.openBucket('b', { policy: 'copy' });
    await h.run(300);
    await c.replica.whenReady('b');
    await acked(h, w.replica.put('b', 'mine', 'relay, older than the fork write', { ack: 'relay' }));
    await h.run(10);
    await c.replica.transact('b', [
      { key: 'mine', value: 'fork' },
      { key: 'theirs', value: 'fork' },
      { key: 'only-here', value: 'fork' },
    ]);
    await h.run(10);
    await acked(h, w.replica.put('b', 'theirs', 'relay, newer than the fork write', { ack: 'relay' }));
    expect((await c.replica.get('b', 'only-here'))?.value).toBe('fork');
    const refreshed = c.replica.refresh('b');
    await h.run(2_000);
    await refreshed;
    expect(c.sent.filter((m) => m.type === 'push')).toEqual([]);
    expect(h.relay.stores.get('b')?.getEntry('only-here')).toBeUndefined();
    // Last writer wins by HLC, as everywhere.
    expect((await c.replica.get('b', 'mine'))?.value).toBe('fork');
    expect((await c.replica.get('b', 'theirs'))?.value).toBe('relay, newer than the fork write');
    expect((await c.replica.get('b', 'only-here'))?.value).toBe('fork');
    expect(c.replica.status('b')).toMatchObject({ pending: 3, phase: 'detached', lastError: null });
  });

  it('keeps the policy across a restart, and refuses to switch a copy that has fork writes', async () => {
    const h = new Harness(settle);
    const storage = new MemoryReplicaStorage();
    const c = await h.open('rC', { storage });
    await c.replica.openBucket('b', { policy: 'copy' });
    await h.run(300);
    await c.replica.put('b', 'k', 'fork');
    await c.replica.close();
    const again = await h.open('rC', { storage, autoConnect: false });
    // Opened without a policy: the stored one holds; detached and ready while offline.
    await again.replica.openBucket('b');
    expect(again.replica.status('b')).toMatchObject({ policy: 'copy', phase: 'detached' });
    expect((await again.replica.whenReady('b')).checkpoint).toBe(again.replica.status('b')?.checkpoint);
    expect(await outcome(again.replica.openBucket('b', { policy: 'replica' }))).toBe('POLICY_CONFLICT');
    expect(again.replica.status('b')?.policy).toBe('copy');
  });

  it('switches a bucket without pending writes to another policy at once', async () => {
    const h = new Harness(settle);
    const w = await h.open('rW');
    const r = await h.open('rR');
    await r.replica.openBucket('b');
    await h.run(200);
    await r.replica.openBucket('b', { policy: 'readOnly' });
    await h.run(200);
    expect(await outcome(r.replica.put('b', 'k', 1))).toBe('READ_ONLY');
    await r.replica.openBucket('b', { policy: 'copy' });
    await h.run(200);
    expect(r.replica.status('b')).toMatchObject({ policy: 'copy', phase: 'detached' });
    await acked(h, w.replica.put('b', 'k', 'missed while detached', { ack: 'relay' }));
    await h.run(200);
    expect(await r.replica.get('b', 'k')).toBeUndefined();
    await r.replica.openBucket('b', { policy: 'replica' });
    await h.run(300);
    expect(r.replica.status('b')).toMatchObject({ policy: 'replica', phase: 'ready' });
    expect((await r.replica.get('b', 'k'))?.value).toBe('missed while detached');
    await acked(h, r.replica.put('b', 'k2', 'writes again', { ack: 'relay' }));
  });
});
