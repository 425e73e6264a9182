import type { Bucket, Client } from '@mittsync/peer';
import { type ReactNode, StrictMode, Suspense, startTransition, useLayoutEffect, useState } from 'react';
import { createRoot, type Root } from 'react-dom/client';
import { afterEach, describe, expect, it } from 'vitest';
import { MittsyncProvider } from './context';
import { useBucket, useQuery, useStatus } from './hooks';
import { client, uniq, until } from './testing/helpers';

// Renders run on React's own scheduler (no act): the tests wait for the DOM like a user.
(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = false;

const mounted: { root: Root; el: HTMLElement; client: Client }[] = [];

function mount(c: Client, node: ReactNode): { root: Root; el: HTMLElement } {
  const el = document.createElement('div');
  document.body.append(el);
  const root = createRoot(el);
  root.render(<MittsyncProvider client={c}>{node}</MittsyncProvider>);
  mounted.push({ root, el, client: c });
  return { root, el };
}

afterEach(async () => {
  for (const m of mounted.splice(0)) {
    m.root.unmount();
    m.el.remove();
    await m.client.close();
  }
});

const text = (el: HTMLElement, testid: string): string | null =>
  el.querySelector(`[data-testid="${testid}"]`)?.textContent ?? null;

const watchers = async (c: Client): Promise<number> => (await c.debug()).watchers;

describe('useQuery', () => {
  it('re-renders a component once per change of its query, and not for other keys', async () => {
    const c = client();
    const b = c.bucket<number>(uniq('b'));
    await b.transact((tx) => {
      tx.put('a/1', 1);
      tx.put('b/1', 1);
    });
    const renders = { a: 0, b: 0, parent: 0 };
    function List({ name }: { name: 'a' | 'b' }) {
      renders[name]++;
      const { rows, loading } = useQuery(b, { prefix: `${name}/` });
      return (
        <p data-testid={name}>{loading ? 'loading' : rows.map((r) => `${r.key}=${r.value}`).join(',')}</p>
      );
    }
    function Parent() {
      renders.parent++;
      return (
        <>
          <List name="a" />
          <List name="b" />
        </>
      );
    }
    const { el } = mount(c, <Parent />);
    await until(() => text(el, 'a') === 'a/1=1' && text(el, 'b') === 'b/1=1', 10_000, 'first results');
    const before = { ...renders };

    await b.put('a/2', 2);
    await until(() => text(el, 'a') === 'a/1=1,a/2=2', 10_000, 'a/2');
    await b.put('a/1', 10);
    await until(() => text(el, 'a') === 'a/1=10,a/2=2', 10_000, 'a/1 changed');
    await b.delete('a/2');
    await until(() => text(el, 'a') === 'a/1=10', 10_000, 'a/2 deleted');
    // Three writes to b/ and none of them renders A; a last write to a/ marks the end.
    await b.put('b/2', 2);
    await b.put('b/1', 3);
    await b.delete('b/2');
    await until(() => text(el, 'b') === 'b/1=3', 10_000, 'b/ writes');
    await b.put('a/3', 3);
    await until(() => text(el, 'a') === 'a/1=10,a/3=3', 10_000, 'a/3');
    await new Promise((r) => setTimeout(r, 100)); // anything late would show now

    const perChange = {
      a: renders.a - before.a,
      b: renders.b - before.b,
      parent: renders.parent - before.parent,
    };
    console.log(`renders per component after 4 changes of a/ and 3 of b/: ${JSON.stringify(perChange)}`);
    expect(perChange).toEqual({ a: 4, b: 3, parent: 0 });
  });

  it('shows one snapshot in every component of a concurrent render during a write burst', async () => {
    const c = client();
    const b = c.bucket<number>(uniq('b'));
    await b.put('t/000', 0);
    const COMPONENTS = 40;
    const WRITES = 150;
    /** Per commit, the distinct versions the components showed (one: no tearing). */
    const commits: string[][] = [];
    let bump: () => void = () => {};

    function Reader({ i }: { i: number }) {
      const snap = useQuery(b, { prefix: 't/' });
      // Slow renders: a transition's render is sliced, and deliveries land between slices.
      const end = performance.now() + 0.5;
      while (performance.now() < end) {}
      return <span data-i={i} data-v={`${snap.version}:${snap.rows.length}`} />;
    }
    function Check() {
      // Reads the same query, so it commits whenever the readers do; its layout effect runs
      // after every mutation of that commit: the DOM then is what the screen shows.
      useQuery(b, { prefix: 't/' });
      useLayoutEffect(() => {
        const shown = [...document.querySelectorAll('[data-board] span')].map(
          (s) => (s as HTMLElement).dataset.v ?? '',
        );
        commits.push([...new Set(shown)]);
      });
      return null;
    }
    function Board() {
      const [tick, setTick] = useState(0);
      bump = () => startTransition(() => setTick((t) => t + 1));
      return (
        <div data-board={tick}>
          {Array.from({ length: COMPONENTS }, (_, i) => (
            // biome-ignore lint/suspicious/noArrayIndexKey: a fixed list
            <Reader key={i} i={i} />
          ))}
          <Check />
        </div>
      );
    }
    const { el } = mount(c, <Board />);
    await until(() => el.querySelector('span')?.dataset.v?.endsWith(':1') === true, 10_000, 'first result');
    expect(await watchers(c)).toBeGreaterThanOrEqual(1);

    let written = 0;
    const writer = (async () => {
      while (written < WRITES) {
        const n = ++written;
        // Not awaited one by one: bursts of writes in flight while renders run.
        void b.put(`t/${String(n).padStart(3, '0')}`, n);
        if (n % 5 === 0) await new Promise((r) => setTimeout(r, 10));
      }
    })();
    const ticker = (async () => {
      while (written < WRITES) {
        bump();
        await new Promise((r) => setTimeout(r, 15));
      }
    })();
    await Promise.all([writer, ticker]);
    await until(
      () => [...el.querySelectorAll('span')].every((s) => s.dataset.v?.endsWith(`:${WRITES + 1}`)),
      20_000,
      'every write shown',
    );
    const torn = commits.filter((shown) => shown.length !== 1);
    const versions = new Set(commits.flat());
    console.log(
      `no tearing: ${commits.length} commits, ${versions.size} snapshots shown, ${torn.length} torn`,
    );
    expect(torn).toEqual([]);
    expect(versions.size).toBeGreaterThan(2); // the renders did see the burst's snapshots
  });

  it('runs one live query per distinct query and releases it when the last user unmounts', async () => {
    const c = client();
    const b = c.bucket<number>(uniq('b'));
    await b.put('p/1', 1);
    await c.ready;
    const base = await watchers(c);
    let setShown: (n: number) => void = () => {};
    function Row({ prefix }: { prefix: string }) {
      const { rows } = useQuery(b, { prefix });
      return <i>{rows.length}</i>;
    }
    function Many() {
      const [shown, set] = useState(5);
      setShown = set;
      return (
        <>
          {Array.from({ length: shown }, (_, i) => (
            // biome-ignore lint/suspicious/noArrayIndexKey: a fixed list
            <Row key={i} prefix="p/" />
          ))}
          {shown > 0 && <Row prefix="q/" />}
        </>
      );
    }
    const { root, el } = mount(c, <Many />);
    await until(() => el.querySelectorAll('i').length === 6 && el.textContent === '111110', 10_000, 'rows');
    expect(await watchers(c)).toBe(base + 2); // six components, two queries

    setShown(2);
    await until(() => el.querySelectorAll('i').length === 3, 10_000, 'three left');
    await new Promise((r) => setTimeout(r, 50));
    expect(await watchers(c)).toBe(base + 2);

    setShown(0);
    await until(async () => (await watchers(c)) === base, 10_000, 'every live query released');

    setShown(3);
    await until(() => el.textContent === '1110', 10_000, 'back');
    expect(await watchers(c)).toBe(base + 2);
    root.unmount();
    await until(async () => (await watchers(c)) === base, 10_000, 'released on unmount');
  });

  it('keeps one live query under StrictMode double effects', async () => {
    const c = client();
    const b = c.bucket<number>(uniq('b'));
    await b.put('k', 7);
    await c.ready;
    const base = await watchers(c);
    function Value() {
      const snap = useQuery(b, { key: 'k' });
      return <b>{snap.loading ? '-' : String(snap.get('k'))}</b>;
    }
    const { el } = mount(
      c,
      <StrictMode>
        <Value />
        <Value />
      </StrictMode>,
    );
    await until(() => el.textContent === '77', 10_000, 'value');
    await new Promise((r) => setTimeout(r, 50));
    expect(await watchers(c)).toBe(base + 1);
  });

  it('takes a bucket by name under the provider', async () => {
    const c = client();
    const name = uniq('b');
    await c.bucket<string>(name).put('x', 'hello');
    function Named() {
      const { rows } = useQuery<string>(name, { prefix: '' });
      return <>{rows.map((r) => r.value).join()}</>;
    }
    const { el } = mount(c, <Named />);
    await until(() => el.textContent === 'hello', 10_000, 'value by name');
  });
});

describe('useStatus', () => {
  it('shows connection, phase and pending writes, and re-renders only when they change', async () => {
    const c = client();
    const name = uniq('b');
    let renders = 0;
    let bucket: Bucket<number> | null = null;
    function Badge() {
      renders++;
      bucket = useBucket<number>(name);
      const s = useStatus(bucket);
      return <p>{`${s.connection}/${s.phase}/${s.ready}/${s.pending}/${s.lastError?.code ?? '-'}`}</p>;
    }
    const { el } = mount(c, <Badge />);
    await until(() => el.textContent === 'open/ready/true/0/-', 20_000, 'ready');
    const b = bucket as unknown as Bucket<number>;
    await c.setOnline(false);
    await until(() => el.textContent?.startsWith('closed/') === true, 10_000, 'offline');
    await b.put('k', 1);
    await b.put('k2', 2);
    await until(() => el.textContent?.endsWith('/2/-') === true, 10_000, 'two pending');
    const offlineRenders = renders;
    // A write to another bucket moves the client's status, not this bucket's summary.
    await c.bucket(uniq('other')).put('z', 1);
    await new Promise((r) => setTimeout(r, 150));
    expect(renders).toBe(offlineRenders);
    await c.setOnline(true);
    await until(() => el.textContent === 'open/ready/true/0/-', 20_000, 'drained');
  });
});

describe('useBucket with suspense', () => {
  it('shows the fallback until the bucket has caught up, then its rows', async () => {
    const name = uniq('b');
    const writer = client();
    await writer.bucket<number>(name).transact(
      (tx) => {
        for (let i = 0; i < 50; i++) tx.put(`r/${i}`, i);
      },
      { ack: 'relay' },
    );
    await writer.close();
    const c = client();
    let fallbacks = 0;
    const readyAtRender: boolean[] = [];
    function Fallback() {
      fallbacks++;
      return <p>loading</p>;
    }
    function Rows() {
      const b = useBucket<number>(name, { suspense: true });
      readyAtRender.push(b.status()?.ready === true);
      const { rows, loading } = useQuery(b, { prefix: 'r/' });
      return <p>{loading ? 'query' : `rows ${rows.length}`}</p>;
    }
    const { el } = mount(
      c,
      <Suspense fallback={<Fallback />}>
        <Rows />
      </Suspense>,
    );
    await until(() => el.textContent === 'rows 50', 20_000, 'rows after ready');
    expect(fallbacks).toBeGreaterThan(0);
    expect(readyAtRender.length).toBeGreaterThan(0);
    expect(readyAtRender.every((r) => r)).toBe(true);
  });

  it('useQuery with suspense renders only once the first result is there', async () => {
    const c = client();
    const b = c.bucket<number>(uniq('b'));
    await b.put('s/1', 1);
    const base = await watchers(c);
    const loadingAtRender: boolean[] = [];
    function Fallback() {
      return <p>wait</p>;
    }
    function Rows() {
      const snap = useQuery(b, { prefix: 's/' }, { suspense: true });
      loadingAtRender.push(snap.loading);
      return <p>{`rows ${snap.rows.length}`}</p>;
    }
    const { root, el } = mount(
      c,
      <Suspense fallback={<Fallback />}>
        <Rows />
      </Suspense>,
    );
    await until(() => el.textContent === 'rows 1', 10_000, 'rows');
    expect(loadingAtRender).not.toContain(true);
    expect(await watchers(c)).toBe(base + 1);
    root.unmount();
    await until(async () => (await watchers(c)) === base, 15_000, 'released after unmount');
  });

  it('throws outside a provider', () => {
    function Lost() {
      useStatus();
      return null;
    }
    const el = document.createElement('div');
    const errors: unknown[] = [];
    const root = createRoot(el, { onUncaughtError: (e) => errors.push(e) });
    root.render(<Lost />);
    return until(() => errors.length > 0, 5000, 'error').then(() => {
      root.unmount();
      expect(String(errors[0])).toMatch(/MittsyncProvider/);
    });
  });
});
