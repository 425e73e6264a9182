import { describe, expect, it } from 'vitest';
import type { LiveResult } from './live-query';
import { client, uniq, until } from './testing/helpers';

describe('client API against the real relay', () => {
  it('reads its own writes: put, get, getMany, delete, scan, transact', async () => {
    const c = client();
    const b = c.bucket<{ n: number }>(uniq('b'));
    await b.put('a/1', { n: 1 });
    await b.put('a/2', { n: 2 });
    await b.put('b/1', { n: 3 });
    expect(await b.get('a/1')).toEqual({ n: 1 });
    expect(await b.getMany(['a/2', 'zz', 'b/1'])).toEqual([{ n: 2 }, undefined, { n: 3 }]);
    await b.delete('a/1');
    expect(await b.get('a/1')).toBeUndefined();
    expect(await b.scan({ prefix: 'a/' })).toEqual([{ key: 'a/2', value: { n: 2 } }]);
    await b.transact((tx) => {
      tx.put('c/1', { n: 10 });
      tx.put('c/2', { n: 11 });
      tx.delete('b/1');
    });
    expect((await b.scan({ start: 'b', end: 'd' })).map((r) => r.key)).toEqual(['c/1', 'c/2']);
    expect((await b.scan({ limit: 2 })).map((r) => r.key)).toEqual(['a/2', 'c/1']);
    await c.close();
  });
});

describe('sync between clients', () => {
  it('acknowledges at the relay and another replica joins with the write', async () => {
    const bucket = uniq('b');
    const a = client();
    await a.bucket(bucket).put('k', 'from a', { ack: 'relay' });
    const b = client();
    const bb = b.bucket(bucket);
    const info = await bb.whenReady();
    expect(info.checkpoint).toBeGreaterThan(0);
    expect(await bb.get('k')).toBe('from a');
    await Promise.all([a.close(), b.close()]);
  });

  it('converges two clients writing the same keys concurrently', async () => {
    const bucket = uniq('b');
    const a = client();
    const b = client();
    const ba = a.bucket<number>(bucket);
    const bb = b.bucket<number>(bucket);
    await Promise.all([ba.whenReady(), bb.whenReady()]);
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 50; i++) {
      writes.push(ba.put(`k${i % 10}`, i, { ack: 'relay' }));
      writes.push(bb.put(`k${i % 10}`, 1000 + i, { ack: 'relay' }));
      if (i % 7 === 0) writes.push(ba.delete(`k${i % 10}`, { ack: 'relay' }));
    }
    await Promise.all(writes);
    await until(
      async () => JSON.stringify(await ba.scan()) === JSON.stringify(await bb.scan()),
      20_000,
      'convergence',
    );
    expect((await ba.scan()).length).toBeGreaterThan(0);
    await Promise.all([a.close(), b.close()]);
  });
});

describe('live queries', () => {
  it('delivers the initial result and then every change, local and remote', async () => {
    const bucket = uniq('b');
    const a = client();
    const b = client();
    const ba = a.bucket<number>(bucket);
    const bb = b.bucket<number>(bucket);
    await ba.put('p/1', 1);
    await ba.put('q/1', 99);
    const results: LiveResult<number>[] = [];
    const stop = ba.watch({ prefix: 'p/' }, (r) => results.push(r));
    await until(() => results.length > 0, 5000, 'initial result');
    expect(results[0]?.initial).toBe(true);
    expect(results[0]?.rows()).toEqual([{ key: 'p/1', value: 1 }]);
    await ba.put('p/2', 2);
    await ba.put('q/2', 2); // outside the query
    await bb.put('p/3', 3, { ack: 'relay' });
    await bb.delete('p/1', { ack: 'relay' });
    const last = () => results[results.length - 1] as LiveResult<number>;
    await until(() => last().size === 2 && last().get('p/3') === 3, 20_000, 'remote changes');
    expect(last().rows()).toEqual([
      { key: 'p/2', value: 2 },
      { key: 'p/3', value: 3 },
    ]);
    const sources = results.flatMap((r) => r.changes.map((c) => `${c.source}:${c.key}`));
    expect(sources).toContain('local:p/2');
    expect(sources).toContain('remote:p/3');
    expect(sources.some((s) => s.endsWith('q/2'))).toBe(false);
    stop();
    const seen = results.length;
    await ba.put('p/4', 4);
    await ba.get('p/4');
    expect(results.length).toBe(seen);
    await Promise.all([a.close(), b.close()]);
  });

  /**
   * Starts a live query on the prefix `k` while one writer keeps putting value i at `keyOf(i)`
   * for i = 0, 1, 2... (each awaited, so commit order is i's order); stops writing once `after`
   * changes were delivered.
   * Returns `[key, value]` of the initial result's rows, then of every change, as delivered:
   * once every write is acknowledged by the relay, a last write (`sentinel`) closes the stream,
   * so a change delivered twice, however late, shows up before it.
   */
  async function watchWhileWriting(
    keyOf: (i: number) => string,
    sentinel: string,
    after: number,
  ): Promise<{
    initial: [string, number][];
    changes: [string, number][];
    written: number;
    snapshots: number;
  }> {
    const c = client();
    const b = c.bucket<number>(uniq('b'));
    await b.whenReady();
    let written = 0;
    let stopWriting = false;
    const writer = (async () => {
      while (!stopWriting) {
        await b.put(keyOf(written), written);
        written++;
      }
    })();
    await until(() => written >= 30, 5000, 'writes before the live query');
    const initial: [string, number][] = [];
    const changes: [string, number][] = [];
    let snapshots = 0;
    const stop = b.watch({ prefix: 'k' }, (r) => {
      if (r.initial) {
        snapshots++;
        initial.push(...r.rows().map((row): [string, number] => [row.key, row.value]));
      } else changes.push(...r.changes.map((ch): [string, number] => [ch.key, ch.value ?? Number.NaN]));
    });
    await until(() => changes.length >= after, 20_000, 'changes after the initial result');
    stopWriting = true;
    await writer;
    await until(() => b.status()?.pending === 0, 20_000, 'writes acknowledged');
    await b.put(sentinel, -1);
    await until(() => changes.some(([key]) => key === sentinel), 5000, 'the last write').catch(() => {});
    stop();
    await c.close();
    return { initial, changes, written, snapshots };
  }

  it('delivers every new key written while it starts exactly once, in commit order', async () => {
    const key = (i: number) => `k${String(i).padStart(6, '0')}`;
    const { initial, changes, written, snapshots } = await watchWhileWriting(key, 'k~', 200);
    expect(snapshots).toBe(1);
    // Keys sort in write order: the initial result is the first writes, the stream the rest.
    expect(initial.length).toBeGreaterThanOrEqual(30);
    const all = Array.from({ length: written }, (_, i): [string, number] => [key(i), i]);
    expect([...initial, ...changes]).toEqual([...all, ['k~', -1]]);
  });

  it('delivers every overwrite made while it starts exactly once, in commit order', async () => {
    const keys = 10;
    const key = (i: number) => `k${i % keys}`;
    const { initial, changes, written, snapshots } = await watchWhileWriting(key, 'k~', 200);
    expect(snapshots).toBe(1);
    // The initial result is the state after some write `last`: each key's latest write up to it.
    const last = Math.max(...initial.map(([, v]) => v));
    const expected = Array.from({ length: keys }, (_, k): [string, number] => [
      `k${k}`,
      last - ((((last - k) % keys) + keys) % keys),
    ]);
    expect(initial).toEqual(expected);
    // Then every later write, each once, in the order they were committed.
    const rest = Array.from({ length: written - last - 1 }, (_, n): [string, number] => [
      key(last + 1 + n),
      last + 1 + n,
    ]);
    expect(changes).toEqual([...rest, ['k~', -1]]);
  });
});

describe('status and lifecycle', () => {
  it('reports connection, catch-up, ready and pending writes', async () => {
    const c = client();
    const bucket = uniq('b');
    const seen = new Set<string>();
    c.onStatus((s) => {
      seen.add(`connection:${s.connection}`);
      for (const b of s.buckets) seen.add(`${b.bucket === bucket ? 'b' : 'other'}:${b.phase}`);
    });
    const b = c.bucket(bucket);
    await b.whenReady();
    await b.put('k', 1, { ack: 'relay' });
    const s = await c.refreshStatus();
    expect(s.connection).toBe('open');
    expect(s.persistent).toBe(true);
    expect(s.hosting).toBe('shared');
    expect(s.replicaId).toMatch(/^r/);
    expect(b.status()).toMatchObject({ phase: 'ready', ready: true, pending: 0, lastError: null });
    expect(seen.has('connection:open')).toBe(true);
    expect(seen.has('b:joining')).toBe(true);
    expect(seen.has('b:ready')).toBe(true);
    await c.close();
  });

  it('goes offline on request, keeps writes pending, and pushes them when back online', async () => {
    const c = client();
    const bucket = uniq('b');
    const b = c.bucket<number>(bucket);
    await b.whenReady();
    await c.setOnline(false);
    await until(() => c.status?.connection === 'closed', 5000, 'offline');
    await b.put('k', 1);
    // The write's reply carries the status: pending counts it as soon as the write resolves.
    expect(b.status()?.pending).toBe(1);
    await b.put('k2', 2);
    expect(b.status()?.pending).toBe(2);
    expect(await b.get('k')).toBe(1);
    await b.delete('k2');
    expect((await c.refreshStatus()).buckets.find((x) => x.bucket === bucket)?.pending).toBe(3);
    await c.setOnline(true);
    await until(() => b.status()?.pending === 0 && c.status?.connection === 'open', 10_000, 'the push');
    const other = client();
    await other.bucket<number>(bucket).whenReady();
    expect(await other.bucket<number>(bucket).get('k')).toBe(1);
    await Promise.all([c.close(), other.close()]);
  });

  it('rejects calls after close with CLOSED', async () => {
    const c = client();
    const b = c.bucket('x');
    await b.put('k', 1);
    await c.close();
    await expect(b.get('k')).rejects.toMatchObject({ code: 'CLOSED' });
  });

  it('gives up its tab lock when killed while starting', async () => {
    const c = client();
    // kill() before the tab's lock is granted: start-up must stop and release it.
    c.kill();
    await expect(c.ready).rejects.toMatchObject({ code: 'CLOSED' });
    const held = async () =>
      ((await navigator.locks.query()).held ?? []).some((l) => l.name === `mittsync-tab:${c.tabId}`);
    await until(async () => !(await held()), 5_000, 'the tab lock released');
  });

  it('runs memory-only when asked, and says it does not persist', async () => {
    const c = client({ storage: 'memory' });
    const b = c.bucket<number>(uniq('b'));
    await b.put('k', 1);
    // The write's reply carries the status: pending counts it as soon as the write resolves.
    expect(b.status()?.pending).toBe(1);
    await b.put('k2', 2);
    expect(b.status()?.pending).toBe(2);
    expect(await b.get('k')).toBe(1);
    await b.delete('k2');
    expect((await c.refreshStatus()).persistent).toBe(false);
    await c.close();
  });

  it('applies a transaction all or nothing', async () => {
    const c = client();
    const b = c.bucket<string>(uniq('b'));
    await expect(
      b.transact((tx) => {
        tx.put('a', 'ok');
        tx.put('k'.repeat(10_000), 'too long a key');
      }),
    ).rejects.toMatchObject({ code: 'KEY_TOO_LARGE' });
    expect(await b.get('a')).toBeUndefined();
    await c.close();
  });

  it('watches single keys and key lists', async () => {
    const c = client();
    const b = c.bucket<number>(uniq('b'));
    await b.put('x', 1);
    let one: LiveResult<number> | undefined;
    let some: LiveResult<number> | undefined;
    b.watch({ key: 'x' }, (r) => {
      one = r;
    });
    b.watch({ keys: ['y', 'z'] }, (r) => {
      some = r;
    });
    await until(() => one?.get('x') === 1 && some !== undefined, 5000, 'initial results');
    await b.transact((tx) => {
      tx.put('x', 2);
      tx.put('y', 3);
      tx.put('w', 4);
    });
    await until(() => one?.get('x') === 2 && some?.get('y') === 3, 5000, 'changes');
    expect(some?.rows()).toEqual([{ key: 'y', value: 3 }]);
    expect(one?.size).toBe(1);
    await c.close();
  });

  it('rejects a write the relay limits refuse locally with a typed error', async () => {
    const c = client();
    const b = c.bucket<string>(uniq('b'));
    await expect(b.put('k'.repeat(10_000), 'v')).rejects.toMatchObject({ code: 'KEY_TOO_LARGE' });
    await c.close();
  });
});

describe('reopening', () => {
  it('serves stored data right away after a restart, before any sync', async () => {
    const bucket = uniq('b');
    const name = uniq('db');
    const w = client();
    await w.bucket<number>(bucket).transact(
      (tx) => {
        for (let i = 0; i < 3000; i++) tx.put(`k${String(i).padStart(5, '0')}`, i);
      },
      { ack: 'relay' },
    );
    const a = client({ name });
    await a.bucket(bucket).whenReady();
    await a.close();
    const b = client({ name });
    const rows = await b.bucket<number>(bucket).scan({ limit: 50 });
    expect(rows.length).toBe(50);
    expect(b.bucket(bucket).status()?.ready ?? true).toBe(true);
    await Promise.all([w.close(), b.close()]);
  });
});

describe('catch-up', () => {
  it('joins while another replica writes, spilling the mitt to IndexedDB', async () => {
    const bucket = uniq('b');
    const w = client();
    const wb = w.bucket<number>(bucket);
    await wb.transact(
      (tx) => {
        for (let i = 0; i < 5000; i++) tx.put(`k${String(i).padStart(5, '0')}`, i);
      },
      { ack: 'relay' },
    );
    let writing = true;
    let n = 0;
    const writer = (async () => {
      while (writing) {
        await wb.transact((tx) => {
          for (let j = 0; j < 5; j++) tx.put(`k${String((n * 7 + j * 997) % 6000).padStart(5, '0')}`, -n);
        });
        n++;
      }
    })();
    await until(() => n > 10, 5000, 'writes');
    const a = client({ sync: { pageSize: 200, mittMaxOps: 20 } });
    const ab = a.bucket<number>(bucket);
    await ab.whenReady();
    writing = false;
    await writer;
    await until(() => (wb.status()?.pending ?? 1) === 0, 10_000, 'the writer to push');
    const expected = await wb.scan();
    await until(
      async () => JSON.stringify(await ab.scan()) === JSON.stringify(expected),
      20_000,
      'convergence',
    );
    expect(ab.status()?.lastError).toBeNull();
    await Promise.all([a.close(), w.close()]);
  });

  it('joins a 20,000-key bucket and its checksum matches the relay', async () => {
    const bucket = uniq('b');
    const w = client();
    for (let s = 0; s < 20_000; s += 5000)
      await w.bucket<unknown>(bucket).transact(
        (tx) => {
          for (let i = s; i < s + 5000; i++)
            tx.put(`k${String(i).padStart(7, '0')}`, { i, note: 'n'.repeat(56) });
        },
        { ack: 'relay' },
      );
    const a = client();
    const ab = a.bucket<{ i: number }>(bucket);
    await ab.whenReady();
    await until(() => (ab.status()?.verified ?? 0) > 0, 10_000, 'checksum verification');
    expect(ab.status()).toMatchObject({ phase: 'ready', lastError: null });
    expect((await ab.getMany(['k0000000', 'k0019999'])).map((v) => v?.i)).toEqual([0, 19_999]);
    expect((await ab.scan()).length).toBe(20_000);
    await Promise.all([a.close(), w.close()]);
  });
});

describe('bucket policies', () => {
  it('a readOnly bucket refuses writes with READ_ONLY; a copy refreshes by dirty set', async () => {
    const bucket = uniq('p');
    const w = client();
    const wb = w.bucket<string>(bucket);
    await wb.put('k', 'one', { ack: 'relay' });
    const r = client();
    const ro = r.bucket<string>(bucket, { policy: 'readOnly' });
    await ro.opened;
    await ro.whenReady();
    const refused = await ro.put('x', 'no').then(
      () => 'written',
      (e: { code?: string }) => e.code,
    );
    expect(refused).toBe('READ_ONLY');
    const c = client();
    const copy = c.bucket<string>(bucket, { policy: 'copy' });
    await copy.whenReady();
    await until(async () => copy.status()?.phase === 'detached', 10_000, 'the copy detaches');
    expect(copy.status()?.policy).toBe('copy');
    await wb.put('k', 'two', { ack: 'relay' });
    expect(await copy.get('k')).toBe('one');
    await copy.refresh();
    expect(await copy.get('k')).toBe('two');
    await Promise.all([w.close(), r.close(), c.close()]);
  });
});
