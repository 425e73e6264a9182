import { describe, expect, it } from 'vitest';
import { checksumEquals, checksumOf } from './checksum';
import { encodeHlc } from './hlc';
import type { Entry } from './model';
import { Harness } from './testing/harness';

const settle = () => new Promise<void>((r) => setImmediate(r));
const live = (entries: Iterable<Entry>) =>
  [...entries]
    .filter((e) => !e.deleted)
    .map((e) => [e.key, e.value])
    .sort();

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
