import { describe, expect, it } from 'vitest';
import type { LiveResult } from './live-query';
import { client, uniq, until } from './testing/helpers';

describe('hosting', () => {
  it('shares one replica between the tabs of a database through a SharedWorker', async () => {
    const name = uniq('db');
    const a = client({ name });
    const b = client({ name });
    const bucket = uniq('b');
    let live: LiveResult<number> | undefined;
    b.bucket<number>(bucket).watch({ key: 'k' }, (r) => {
      live = r;
    });
    await a.bucket<number>(bucket).put('k', 7);
    await until(() => live?.get('k') === 7, 5000, 'the other tab to see the write');
    expect(live?.changes[0]?.source).toBe('local');
    const [sa, sb] = await Promise.all([a.refreshStatus(), b.refreshStatus()]);
    expect(sa.hosting).toBe('shared');
    expect(sa.replicaId).toBe(sb.replicaId);
    expect((await a.debug()).tabs).toBe(2);
    await Promise.all([a.close(), b.close()]);
  });

  it('refuses a tab that opens the same database with other options', async () => {
    const name = uniq('db');
    const a = client({ name });
    await a.ready;
    const b = client({ name, storage: 'memory' });
    await expect(b.ready).rejects.toMatchObject({ code: 'BAD_MESSAGE' });
    await Promise.all([a.close(), b.close()]);
  });

  it("cleans up a dead tab's live queries when its liveness lock is released", async () => {
    const name = uniq('db');
    const a = client({ name });
    const b = client({ name });
    const bucket = uniq('b');
    a.bucket(bucket).watch({ prefix: '' }, () => {});
    b.bucket(bucket).watch({ prefix: '' }, () => {});
    await until(async () => (await b.debug()).watchers === 2, 5000, 'two watchers');
    a.kill(); // no detach: only the released tab lock tells the worker
    await until(async () => (await b.debug()).watchers === 1, 5000, 'the dead tab cleaned up');
    expect((await b.debug()).tabs).toBe(1);
    await b.close();
  });

  it('falls back to dedicated workers with one elected leader', async () => {
    const name = uniq('db');
    const a = client({ name, hosting: 'dedicated' });
    await a.ready;
    const b = client({ name, hosting: 'dedicated' });
    const bucket = uniq('b');
    await b.bucket<string>(bucket).put('from-b', 'b');
    expect(await a.bucket<string>(bucket).get('from-b')).toBe('b');
    const [sa, sb] = await Promise.all([a.refreshStatus(), b.refreshStatus()]);
    expect(sa.hosting).toBe('leader');
    expect(sb.hosting).toBe('follower');
    expect(sa.replicaId).toBe(sb.replicaId);
    await Promise.all([a.close(), b.close()]);
  });

  it('hands over to a follower when the leader tab dies, keeping its live queries', async () => {
    const name = uniq('db');
    const bucket = uniq('b');
    const a = client({ name, hosting: 'dedicated' });
    await a.ready;
    await a.bucket<number>(bucket).put('k1', 1);
    const b = client({ name, hosting: 'dedicated' });
    let live: LiveResult<number> | undefined;
    b.bucket<number>(bucket).watch({ prefix: 'k' }, (r) => {
      live = r;
    });
    await until(() => live?.get('k1') === 1, 5000, 'initial result through the leader');
    a.kill(); // the leader's worker dies with its tab
    await b.bucket<number>(bucket).put('k2', 2);
    await until(
      () => live?.get('k2') === 2 && live.get('k1') === 1,
      10_000,
      'the live query after hand-over',
    );
    expect((await b.refreshStatus()).hosting).toBe('leader');
    expect(await b.bucket<number>(bucket).get('k1')).toBe(1);
    await b.close();
  });
});
