import { describe, expect, it } from 'vitest';
import { checksumEquals, checksumOf } from './checksum';
import { encodeHlc } from './hlc';
import { MemoryReplicaStorage } from './memory-storage';
import type { Entry } from './model';
import { Harness } from './testing/harness';

const settle = () => new Promise<void>((r) => setImmediate(r));
const live = (entries: Iterable<Entry>) =>
  [...entries]
    .filter((e) => !e.deleted)
    .map((e) => [e.key, e.value])
    .sort();

describe('Replica', () => {
  it('writes locally, pushes, and converges with another replica through the relay', async () => {
    const h = new Harness(settle);
    const a = await h.open('rA');
    const b = await h.open('rB');
    await a.replica.openBucket('b');
    await b.replica.openBucket('b');
    await h.run(100);
    const acked = a.replica.put('b', 'k', { n: 1 }, { ack: 'relay' });
    await h.run(100);
    await acked;
    expect((await b.replica.get('b', 'k'))?.value).toEqual({ n: 1 });
    expect(b.replica.status('b')).toMatchObject({ phase: 'ready', pending: 0 });
  });

  it('scenario 15: subscribes before it downloads', async () => {
    const h = new Harness(settle);
    const a = await h.open('rA');
    await a.replica.openBucket('b');
    await h.run(100);
    const kinds = a.sent.filter((m) => m.bucket === 'b').map((m) => m.type);
    expect(kinds.indexOf('sub')).toBeGreaterThanOrEqual(0);
    expect(kinds.indexOf('sub')).toBeLessThan(kinds.indexOf('pageReq'));
  });

  it('scenarios 16/17: while joining, live ops newer than the download win and live tombstones delete', async () => {
    const h = new Harness(settle, { splitMinEntries: 1 });
    const w = await h.open('rW');
    for (let i = 0; i < 40; i++) await w.replica.put('b', `k${String(i).padStart(2, '0')}`, { v: 'old' });
    await h.run(200);
    // The joiner pages slowly (2 entries a page) while the writer overwrites and deletes.
    const j = await h.open('rJ', { pageSize: 2, parallelRanges: 1 });
    await j.replica.openBucket('b');
    for (let i = 0; i < 40; i += 4) {
      await w.replica.put('b', `k${String(i).padStart(2, '0')}`, { v: 'new' });
      await w.replica.del('b', `k${String(i + 1).padStart(2, '0')}`);
      await h.run(5);
    }
    const ready = j.replica.whenReady('b');
    await h.run(2_000);
    const info = await ready;
    expect(info.flush).toBe('done');
    expect(info.covered).toContain('rW');
    expect(live(j.storage.peek('b').values())).toEqual(live(w.storage.peek('b').values()));
    expect(j.storage.peek('b').get('k01')?.deleted).toBe(true);
    expect(j.storage.peek('b').get('k00')?.value).toEqual({ v: 'new' });
  });

  it('scenario 6: a dropped op on the live stream is found as a gap and recovered by a resume', async () => {
    const h = new Harness(settle);
    const w = await h.open('rW');
    const r = await h.open('rR');
    await r.replica.openBucket('b');
    await w.replica.openBucket('b');
    await h.run(100);
    let dropped = false;
    h.relay.filter = (dir, m, to) => {
      if (
        dir === 'out' &&
        to === 'rR' &&
        m.type === 'deliver' &&
        m.ops.some((o) => o.key === 'k2') &&
        !dropped
      ) {
        dropped = true;
        return 'drop';
      }
      return 'pass';
    };
    for (let i = 1; i <= 4; i++) {
      await w.replica.put('b', `k${i}`, i);
      await h.run(20);
    }
    await h.run(1_000);
    expect(dropped).toBe(true);
    expect(r.sent.filter((m) => m.type === 'sub' && (m.since ?? 0) > 0).length).toBeGreaterThan(0);
    expect(live(r.storage.peek('b').values())).toEqual(live(w.storage.peek('b').values()));
    expect(r.replica.status('b')?.checkpoint).toBe(h.relay.hosts.get('b')?.state.head);
  });

  it('scenario 7: a duplicated live op is applied once', async () => {
    const h = new Harness(settle);
    const w = await h.open('rW');
    const r = await h.open('rR');
    await r.replica.openBucket('b');
    await h.run(100);
    h.relay.filter = (dir, m) => (dir === 'out' && m.type === 'deliver' ? 'dup' : 'pass');
    const changes: string[] = [];
    r.replica.onChange((_b, es, source) => source === 'remote' && changes.push(...es.map((e) => e.key)));
    await w.replica.put('b', 'once', 1);
    await h.run(300);
    expect(changes).toEqual(['once']);
  });

  it('scenario 9: a lost push ack makes the replica re-push; the relay dedupes', async () => {
    const h = new Harness(settle);
    const w = await h.open('rW');
    await w.replica.openBucket('b');
    await h.run(100);
    let drops = 0;
    h.relay.filter = (dir, m) => (dir === 'out' && m.type === 'ack' && drops++ === 0 ? 'drop' : 'pass');
    const acked = w.replica.put('b', 'k', 1, { ack: 'relay' });
    await h.run(1_000);
    await acked;
    expect(w.sent.filter((m) => m.type === 'push').length).toBeGreaterThan(1);
    expect(h.relay.hosts.get('b')?.state.head).toBe(1);
  });

  it('scenario 13: the checkpoint only advances together with the data it covers', async () => {
    const h = new Harness(settle);
    const w = await h.open('rW');
    const r = await h.open('rR');
    await r.replica.openBucket('b');
    await h.run(100);
    const before = r.storage.peekMeta('b').meta?.checkpoint;
    r.storage.failNextCommits = 1; // the commit carrying the next op fails
    await w.replica.put('b', 'k', 1);
    await h.run(50);
    const meta = r.storage.peekMeta('b').meta;
    if (r.storage.peek('b').get('k') === undefined) expect(meta?.checkpoint).toBe(before);
    await h.run(2_000); // the gap probe resumes and recovers it
    expect(r.storage.peek('b').get('k')?.value).toBe(1);
    expect(r.storage.peekMeta('b').meta?.checkpoint).toBe(h.relay.hosts.get('b')?.state.head);
  });

  it('tells applying listeners of live entries before they are stored; reads made then wait for them', async () => {
    const h = new Harness(settle);
    const w = await h.open('rW');
    /** Commits held until released, as a slow IndexedDB transaction would be. */
    class SlowStorage extends MemoryReplicaStorage {
      gate: Promise<void> | null = null;
      override async commit(batch: Parameters<MemoryReplicaStorage['commit']>[0]): Promise<void> {
        if (this.gate !== null) await this.gate;
        return super.commit(batch);
      }
    }
    const storage = new SlowStorage();
    const r = await h.open('rR', { storage });
    await r.replica.openBucket('b');
    await h.run(100);
    let release: () => void = () => undefined;
    storage.gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const events: string[] = [];
    let read: Promise<unknown> | undefined;
    let committed: Promise<boolean> | undefined;
    r.replica.onApplying((bucket, entries, done) => {
      events.push(`applying ${bucket} ${entries.map((e) => e.key)}`);
      committed = done;
      read = r.replica.get('b', 'k').then((e) => events.push(`read ${e?.value}`));
    });
    r.replica.onChange((_b, entries) => events.push(`change ${entries.map((e) => e.key)}`));
    const before = r.storage.peekMeta('b').meta?.checkpoint;
    await w.replica.put('b', 'k', 7);
    await h.run(50);
    expect(events).toEqual(['applying b k']);
    expect(storage.peek('b').get('k')).toBeUndefined();
    expect(r.storage.peekMeta('b').meta?.checkpoint).toBe(before);
    release();
    expect(await committed).toBe(true);
    await read;
    expect(events).toEqual(['applying b k', 'change k', 'read 7']);
    expect(r.storage.peekMeta('b').meta?.checkpoint).toBe(h.relay.hosts.get('b')?.state.head);
  });

  it('tells applying listeners that a failed commit did not store their entries, and recovers them', async () => {
    const h = new Harness(settle);
    const w = await h.open('rW');
    const r = await h.open('rR');
    await r.replica.openBucket('b');
    await h.run(100);
    const outcomes: Promise<boolean>[] = [];
    r.replica.onApplying((_b, _e, done) => outcomes.push(done));
    r.storage.failNextCommits = 1;
    await w.replica.put('b', 'k', 1);
    await h.run(50);
    expect(await outcomes[0]).toBe(false);
    await r.replica.get('b', 'k'); // a read does not hang on a failed commit
    await h.run(2_000); // resumed from the durable checkpoint
    expect((await r.replica.get('b', 'k'))?.value).toBe(1);
  });

  it('tells status listeners the checkpoint each live delivery advances it to', async () => {
    const h = new Harness(settle);
    const w = await h.open('rW');
    const r = await h.open('rR');
    await r.replica.openBucket('b');
    await w.replica.openBucket('b');
    await h.run(100);
    // The receiving replica writes nothing: only live deliveries can move its status.
    const seen: number[] = [];
    r.replica.onStatus((s) => seen.push(s.buckets.find((x) => x.bucket === 'b')?.checkpoint ?? -1));
    for (let i = 0; i < 3; i++) {
      await w.replica.put('b', `k${i}`, i);
      await h.run(50);
    }
    const head = h.relay.hosts.get('b')?.state.head;
    expect(head).toBe(3);
    expect(r.storage.peekMeta('b').meta?.checkpoint).toBe(head);
    expect(seen.at(-1)).toBe(head);
    expect(r.replica.status('b')?.mitt.ops).toBe(0);
  });

  it('applies live ops that arrive while the join commits ready, and holds none once ready', async () => {
    const h = new Harness(settle);
    const w = await h.open('rW');
    for (let i = 0; i < 20; i++) await w.replica.put('b', `k${i}`, 0);
    await h.run(200);
    // The joiner's commit that makes it ready waits until the test lets it finish.
    let release: (() => void) | null = null;
    let holdReady = true;
    const storage = new (class extends MemoryReplicaStorage {
      override async commit(batch: Parameters<MemoryReplicaStorage['commit']>[0]) {
        if (holdReady && batch.meta?.ready === true) {
          holdReady = false;
          await new Promise<void>((r) => {
            release = r;
          });
        }
        return super.commit(batch);
      }
    })();
    const j = await h.open('rJ', { storage });
    const statuses: { phase: string; mitt: number; checkpoint: number }[] = [];
    j.replica.onStatus((s) => {
      const b = s.buckets.find((x) => x.bucket === 'b');
      if (b !== undefined) statuses.push({ phase: b.phase, mitt: b.mitt.ops, checkpoint: b.checkpoint });
    });
    await j.replica.openBucket('b');
    await h.run(500);
    expect(release).not.toBeNull();
    // Live writes reach the joiner while its ready commit is in flight.
    for (let i = 0; i < 3; i++) await w.replica.put('b', `k${i}`, 1);
    await h.run(200);
    (release as unknown as () => void)();
    await h.run(500);
    const head = h.relay.hosts.get('b')?.state.head;
    expect(j.replica.status('b')).toMatchObject({ phase: 'ready', checkpoint: head, mitt: { ops: 0 } });
    expect(live(j.storage.peek('b').values())).toEqual(live(w.storage.peek('b').values()));
    expect(statuses.at(-1)).toEqual({ phase: 'ready', mitt: 0, checkpoint: head });
  });

  it('scenario 18: a download cut off leaves the bucket not ready; the join completes after reconnecting', async () => {
    const h = new Harness(settle);
    const w = await h.open('rW');
    for (let i = 0; i < 30; i++) await w.replica.put('b', `k${i}`, i);
    await h.run(200);
    const j = await h.open('rJ', { pageSize: 3, parallelRanges: 1 });
    let pages = 0;
    h.relay.filter = (dir, m) => {
      if (dir === 'out' && m.type === 'page' && ++pages === 3) {
        j.transport.cut();
        return 'drop';
      }
      return 'pass';
    };
    await j.replica.openBucket('b');
    await h.run(20);
    expect(j.replica.status('b')?.ready).toBe(false);
    expect(j.storage.peekMeta('b').meta?.ready).toBe(false);
    await h.run(3_000);
    expect(j.replica.status('b')).toMatchObject({ phase: 'ready', ready: true });
    expect(live(j.storage.peek('b').values())).toHaveLength(30);
  });

  it('scenario 19: a resume point already compacted gets a reset; the re-join keeps unacknowledged writes', async () => {
    const h = new Harness(settle, { tombstoneRetainOps: 2, tombstoneRetainMs: 0 });
    const w = await h.open('rW');
    const r = await h.open('rR');
    await w.replica.put('b', 'first', 1);
    await r.replica.openBucket('b');
    await h.run(100);
    expect(r.replica.status('b')?.checkpoint).toBeGreaterThan(0);
    r.replica.disconnect({ reconnect: false });
    await h.run(10);
    for (let i = 0; i < 10; i++) {
      await w.replica.put('b', `t${i}`, i);
      await w.replica.del('b', `t${i}`);
    }
    await h.run(200);
    await r.replica.put('b', 'mine', 'offline write');
    r.replica.connect();
    await h.run(2_000);
    const subs = r.sent.filter((m) => m.type === 'sub');
    expect(subs.map((m) => m.since)).toEqual([0, 1, 0]); // join, resume refused (reset), re-join
    expect(h.relay.stores.get('b')?.getEntry('mine')?.value).toBe('offline write');
    expect(live(r.storage.peek('b').values())).toEqual(live(w.storage.peek('b').values()));
  });

  it('scenario 20: a mitt over its bound spills to storage while joining, and the join stays correct', async () => {
    const h = new Harness(settle);
    const w = await h.open('rW');
    for (let i = 0; i < 50; i++) await w.replica.put('b', `k${i}`, 0);
    await h.run(200);
    const j = await h.open('rJ', {
      pageSize: 2,
      parallelRanges: 1,
      mitt: { maxOps: 5, maxBytes: 1 << 20, maxAhead: 100 },
    });
    let maxHeld = 0;
    j.replica.onStatus((s) => {
      for (const b of s.buckets) maxHeld = Math.max(maxHeld, b.mitt.ops);
    });
    await j.replica.openBucket('b');
    for (let round = 1; round <= 5; round++) {
      for (let i = 0; i < 50; i += 5) await w.replica.put('b', `k${i}`, round);
      await h.run(10);
    }
    await h.run(3_000);
    expect(maxHeld).toBeLessThanOrEqual(15);
    expect(j.replica.status('b')?.phase).toBe('ready');
    expect(live(j.storage.peek('b').values())).toEqual(live(w.storage.peek('b').values()));
  });

  for (const maxKept of [250_000, 0]) {
    it(`a spilling join ${maxKept > 0 ? 'applies held ops and merges downloads without reading storage' : 'past maxKept merges by reading storage'}, and stays correct`, async () => {
      const h = new Harness(settle);
      const w = await h.open('rW');
      await w.replica.transact(
        'b',
        Array.from({ length: 300 }, (_, i) => ({ key: `k${String(i).padStart(3, '0')}`, value: 0 })),
      );
      await h.run(300);
      let keysRead = 0;
      const storage = new (class extends MemoryReplicaStorage {
        override getEntries(bucket: string, keys: readonly string[]) {
          keysRead += keys.length;
          return super.getEntries(bucket, keys);
        }
      })();
      const j = await h.open('rJ', {
        storage,
        pageSize: 10,
        parallelRanges: 2,
        mitt: { maxOps: 3, maxBytes: 1 << 20, maxAhead: 100, maxKept },
      });
      let maxHeld = 0;
      j.replica.onStatus((s) => {
        for (const b of s.buckets) maxHeld = Math.max(maxHeld, b.mitt.ops);
      });
      await j.replica.openBucket('b');
      for (let round = 1; round <= 6; round++) {
        for (let i = 0; i < 300; i += 30) await w.replica.put('b', `k${String(i).padStart(3, '0')}`, round);
        await h.run(10);
      }
      await h.run(3_000);
      expect(maxHeld).toBeLessThanOrEqual(15); // the mitt did spill (60 writes)
      const st = j.replica.status('b');
      expect(st?.phase).toBe('ready');
      expect(live(j.storage.peek('b').values())).toEqual(live(w.storage.peek('b').values()));
      // The stored checksum, kept up to date without reading the versions it replaced, matches.
      expect(st?.lastError).toBeNull();
      expect(st?.verified).toBeGreaterThan(0);
      // Fresh: held ops find what storage has in memory (the merged pages' spans, the relay's
      // `prev`, kept versions), so nothing is read; otherwise every download is read.
      if (maxKept > 0) expect(keysRead).toBe(0);
      else expect(keysRead).toBeGreaterThanOrEqual(300);
    });
  }

  it('scenario 22: a write from a clock an hour ahead is rejected with CLOCK_DRIFT and undone locally', async () => {
    const h = new Harness(settle);
    const fast = await h.open('rF', { skewMs: () => 3_600_000 });
    await fast.replica.openBucket('b');
    await h.run(100);
    const attempt = fast.replica.put('b', 'k', 'from the future', { ack: 'relay' });
    const outcome = attempt.then(
      () => 'resolved',
      (e: { code?: string }) => e.code,
    );
    await h.run(1_000);
    expect(await outcome).toBe('CLOCK_DRIFT');
    expect(h.relay.stores.get('b')?.getEntry('k')).toBeUndefined();
    expect(fast.replica.status('b')?.lastError?.code).toBe('CLOCK_DRIFT');
    await h.run(1_000);
    expect(await fast.replica.get('b', 'k')).toBeUndefined();
  });

  it('scenario 23: after the clock jumps backwards, a new write still wins over the previous one', async () => {
    const h = new Harness(settle);
    let skew = 0;
    const a = await h.open('rA', { skewMs: () => skew });
    await a.replica.put('b', 'k', 'first');
    skew = -3_600_000;
    await a.replica.put('b', 'k', 'second');
    expect((await a.replica.get('b', 'k'))?.value).toBe('second');
  });

  it('keeps a write and its outbox entry together, and pushes it after a restart (acked local)', async () => {
    const h = new Harness(settle);
    const a = await h.open('rA', { autoConnect: false });
    await a.replica.put('b', 'k', 'saved');
    expect(a.storage.peekMeta('b').outbox.map((o) => o.key)).toEqual(['k']);
    expect(a.storage.peek('b').get('k')?.value).toBe('saved');
    await a.replica.close();
    const again = await h.open('rA', { storage: a.storage });
    await h.run(500);
    expect(h.relay.stores.get('b')?.getEntry('k')?.value).toBe('saved');
    expect(again.replica.status('b')?.pending).toBe(0);
  });
});

/**
 * A replica whose stored data differs from the relay's (a store that lost an update, or kept
 * a key the relay never had) finds out from the checksum the relay sends with live ops, says
 * so with CHECKSUM_MISMATCH and re-joins, which repairs it.
 */
describe('Replica checksum verification', () => {
  it('detects a stored entry that differs from the relay and repairs it by re-joining', async () => {
    const h = new Harness(settle);
    const w = await h.open('rW');
    let r = await h.open('rR');
    await w.replica.openBucket('b');
    await r.replica.openBucket('b');
    await h.run(100);
    for (let i = 0; i < 20; i++) await w.replica.put('b', `k${i}`, { v: i });
    await h.run(300);
    expect(r.replica.status('b')?.phase).toBe('ready');
    expect(live(r.storage.peek('b').values())).toEqual(live(w.storage.peek('b').values()));

    // Corrupt the reader's store while it is closed: k3 goes back to an older version, and a
    // key the relay never had appears. The stored checksum agrees with the corrupted data,
    // as it would after a store bug, so nothing local can tell.
    await r.replica.close();
    const storage = r.storage;
    const meta = storage.peekMeta('b').meta;
    if (meta === undefined) throw new Error('no meta');
    const k3 = storage.peek('b').get('k3');
    if (k3 === undefined) throw new Error('no k3');
    const corrupt: Entry[] = [
      { ...k3, value: { v: 'stale' }, hlc: encodeHlc(1, 0, 'rX') },
      { key: 'phantom', value: { v: 'never written' }, hlc: encodeHlc(2, 0, 'rX'), seq: 1 },
    ];
    const after = new Map(storage.peek('b'));
    for (const e of corrupt) after.set(e.key, e);
    await storage.commit({
      bucket: 'b',
      puts: corrupt,
      meta: { ...meta, sum: checksumOf(after.values()) },
    });

    r = await h.open('rR', { storage });
    const errors: string[] = [];
    r.replica.onStatus((s) => {
      const e = s.buckets.find((x) => x.bucket === 'b')?.lastError;
      if (e) errors.push(e.code);
    });
    await r.replica.openBucket('b');
    await h.run(300);
    // A live write makes the relay send its checksum; the reader compares and re-joins.
    await w.replica.put('b', 'k19', { v: 'after' });
    await h.run(2_000);

    expect(errors).toContain('CHECKSUM_MISMATCH');
    const rs = r.replica.status('b');
    expect(rs?.phase).toBe('ready');
    expect(r.storage.peek('b').get('k3')?.value).toEqual({ v: 3 });
    expect(r.storage.peek('b').get('phantom')).toBeUndefined();
    expect(live(r.storage.peek('b').values())).toEqual(live(w.storage.peek('b').values()));
    const repaired = r.storage.peekMeta('b').meta?.sum;
    const relaySum = checksumOf(w.storage.peek('b').values());
    expect(repaired !== undefined && checksumEquals(repaired, relaySum)).toBe(true);

    // Once repaired, later deliveries verify without another re-join (no new subscription;
    // lastError keeps the last error, so it is not the signal here).
    const subs = () => r.sent.filter((m) => m.type === 'sub' && m.bucket === 'b').length;
    const subsBefore = subs();
    const verifiedBefore = r.replica.status('b')?.verified ?? 0;
    await w.replica.put('b', 'k0', { v: 'later' });
    await h.run(500);
    expect(r.storage.peek('b').get('k0')?.value).toEqual({ v: 'later' });
    expect(r.replica.status('b')?.verified).toBeGreaterThan(verifiedBefore);
    expect(subs()).toBe(subsBefore);
  });

  it('verifies quietly when the stored data matches the relay', async () => {
    const h = new Harness(settle);
    const w = await h.open('rW');
    const r = await h.open('rR');
    await w.replica.openBucket('b');
    await r.replica.openBucket('b');
    await h.run(100);
    const errors: string[] = [];
    r.replica.onStatus((s) => {
      const e = s.buckets.find((x) => x.bucket === 'b')?.lastError;
      if (e) errors.push(e.code);
    });
    for (let i = 0; i < 10; i++) {
      await w.replica.put('b', `k${i}`, { v: i });
      await h.run(50);
    }
    expect(r.replica.status('b')?.verified).toBeGreaterThan(0);
    expect(errors).toEqual([]);
  });
});
