import { describe, expect, it } from 'vitest';
import { liveStore } from './live-store';
import { client, uniq, until } from './testing/helpers';

describe('liveStore against the real worker', () => {
  it('shares one live query per query, notifies only its own changes, releases it at the end', async () => {
    const c = client();
    const b = c.bucket<number>(uniq('b'));
    await b.put('p/1', 1);
    await b.put('q/1', 1);
    const base = (await c.debug()).watchers;
    const p = liveStore(b, { prefix: 'p/' });
    expect(liveStore(b, { prefix: 'p/' })).toBe(p);
    expect(p.getSnapshot().loading).toBe(true);
    let pCalls = 0;
    let qCalls = 0;
    const stops = [
      p.subscribe(() => pCalls++),
      liveStore(b, { prefix: 'p/' }).subscribe(() => pCalls++),
      liveStore(b, { prefix: 'q/' }).subscribe(() => qCalls++),
    ];
    const q = liveStore(b, { prefix: 'q/' });
    await until(() => !p.getSnapshot().loading && !q.getSnapshot().loading, 10_000, 'first results');
    expect(p.getSnapshot().rows).toEqual([{ key: 'p/1', value: 1 }]);
    expect((await c.debug()).watchers).toBe(base + 2); // two queries, three subscribers

    const first = p.getSnapshot();
    expect(p.getSnapshot()).toBe(first); // no delivery, same snapshot
    const qBefore = qCalls;
    await b.put('p/2', 2);
    await until(() => p.getSnapshot().rows.length === 2, 10_000, 'p/2');
    const second = p.getSnapshot();
    expect(second.version).toBe(first.version + 1);
    expect(second.rows[0]).toBe(first.rows[0]); // p/1 untouched: the same row object
    expect(second.get('p/2')).toBe(2);
    expect(second.get('p/3')).toBeUndefined();
    expect(first.rows).toHaveLength(1); // older snapshots don't change
    await until(() => qCalls > qBefore || pCalls >= 4, 10_000, 'deliveries');
    expect(qCalls).toBe(qBefore); // q/ heard nothing of p/2

    for (const stop of stops) stop();
    await until(async () => (await c.debug()).watchers === base, 10_000, 'release');
    expect(p.active).toBe(false);
    expect(liveStore(b, { prefix: 'p/' })).not.toBe(p); // let go, a new one next time
    await c.close();
  });

  it('keeps the live query across an unsubscribe followed at once by a subscribe', async () => {
    const c = client();
    const b = c.bucket<number>(uniq('b'));
    await b.put('k', 1);
    const base = (await c.debug()).watchers;
    const s = liveStore(b, { key: 'k' });
    const stop1 = s.subscribe(() => {});
    await until(() => !s.getSnapshot().loading, 10_000, 'first result');
    stop1();
    const stop2 = s.subscribe(() => {});
    await new Promise((r) => setTimeout(r, 50));
    expect(s.active).toBe(true);
    expect(s.getSnapshot().get('k')).toBe(1);
    expect((await c.debug()).watchers).toBe(base + 1);
    stop2();
    await c.close();
  });

  it('reports a live query that cannot start in its snapshot', async () => {
    const c = client();
    const b = c.bucket<number>(uniq('b'));
    await c.close();
    const s = liveStore(b, { prefix: '' });
    let calls = 0;
    const stop = s.subscribe(() => calls++);
    await until(() => s.getSnapshot().error !== null, 10_000, 'error');
    expect(s.getSnapshot().error?.code).toBe('CLOSED');
    expect(s.getSnapshot().loading).toBe(false);
    expect(calls).toBe(1);
    stop();
  });

  it('loads without a subscriber and holds the live query a while for one to come', async () => {
    const c = client();
    const b = c.bucket<number>(uniq('b'));
    await b.put('k', 3);
    const base = (await c.debug()).watchers;
    const s = liveStore(b, { key: 'k' });
    const loaded = s.load(300);
    expect(s.load(300)).toBe(loaded); // one wait, however many ask
    await loaded;
    expect(s.getSnapshot().get('k')).toBe(3);
    expect((await c.debug()).watchers).toBe(base + 1);
    const stop = s.subscribe(() => {}); // the retried render subscribes: the query stays
    await new Promise((r) => setTimeout(r, 500));
    expect((await c.debug()).watchers).toBe(base + 1);
    stop();
    await until(async () => (await c.debug()).watchers === base, 10_000, 'release');
    await s.load(50); // nobody came this time: let go after the hold
    expect(s.active).toBe(true);
    await until(() => !s.active, 10_000, 'hold expired');
    expect((await c.debug()).watchers).toBe(base);
    await c.close();
  });
});
