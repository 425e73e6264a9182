import type { AckLevel, Bucket, BucketStatus, Client, ClientStatus, ReadyInfo } from '@mittsync/peer';
import type { DemoConfig } from './config';
import type { Item } from './inventory';
import { LoadGenerator, type LoadStats } from './load';
import { digestRows, type RowsDigest } from './rows-hash';
import type { TableModel } from './table-model';

/** One status of the demo's bucket as the page saw it (kept when something in it changed). */
export interface StatusPoint {
  at: number;
  connection: ClientStatus['connection'];
  hosting: ClientStatus['hosting'];
  phase: BucketStatus['phase'] | 'none';
  ready: boolean;
  checkpoint: number;
  pending: number;
  pages: number;
  entries: number;
  lastError: string | null;
}

/** What the page held when its bucket first reported `ready`. */
export interface ReadyCapture {
  at: number;
  /** The live query's rows at that very status event (same ordered channel as the changes). */
  view: RowsDigest;
  /** A scan of the replica started right then. */
  storage: RowsDigest | null;
  /** Keys given to `expectAtReady` that the table did not hold at that status event. */
  missing: string[];
}

interface HookDeps {
  config: DemoConfig;
  client: Client;
  model: TableModel<Item>;
  bucket: () => Bucket<Item> | null;
  open: () => Bucket<Item>;
  status: () => ClientStatus | null;
  setOnline: (online: boolean) => Promise<void>;
  seed: (rows: number) => Promise<void>;
}

/**
 * `window.__mittsync`: what the end-to-end tests drive and inspect. Assertions compare exact
 * contents (row count and a digest of every (key, value) pair) with the relay's, so the hook
 * reads the replica itself (a full scan), not only what the table shows.
 */
export function installTestHook(d: HookDeps) {
  const history: StatusPoint[] = [];
  const capture = new URLSearchParams(location.search).has('capture');
  let firstReady: ReadyCapture | null = null;
  let expected: readonly string[] = [];
  let readyPending = false;
  const takeReady = () => {
    const got: ReadyCapture = {
      at: Date.now(),
      view: digestRows(d.model.entries()),
      storage: null,
      missing: expected.filter((k) => d.model.get(k) === undefined),
    };
    firstReady = got;
    void hook.digest().then((dg) => {
      got.storage = dg;
    });
  };
  let writer: LoadGenerator<unknown> | null = null;
  const remoteChanges: string[] = [];

  const need = (): Bucket<Item> => d.bucket() ?? d.open();
  const asAny = (b: Bucket<Item>) => b as unknown as Bucket<unknown>;

  const hook = {
    config: d.config,
    client: d.client,
    tabId: d.client.tabId,
    history,
    /** Opens the bucket (the page was loaded with `open=0`). */
    open: () => void d.open(),
    status: () => d.status(),
    bucketStatus: (): BucketStatus | undefined =>
      d.status()?.buckets.find((b) => b.bucket === d.config.bucket),
    firstReady: () => firstReady,
    /** Keys the first ready must hold (checked at that status event, in the table's rows). */
    expectAtReady: (keys: readonly string[]) => {
      expected = keys;
    },
    /** Count and digest of every row of the replica (a full scan through the worker). */
    digest: async (): Promise<RowsDigest> => {
      const rows = await need().scan({});
      return digestRows(rows.map((r) => [r.key, r.value] as const));
    },
    /** Count and digest of what the table's live query holds. */
    viewDigest: (): RowsDigest => digestRows(d.model.entries()),
    get: (key: string) => asAny(need()).get(key),
    getMany: (keys: string[]) => asAny(need()).getMany(keys),
    put: (key: string, value: unknown, ack: AckLevel = 'local') => asAny(need()).put(key, value, { ack }),
    delete: (key: string, ack: AckLevel = 'local') => need().delete(key, { ack }),
    transact: (writes: [string, unknown][], ack: AckLevel = 'local') =>
      asAny(need()).transact(
        (tx) => {
          for (const [k, v] of writes)
            if (v === null) tx.delete(k);
            else tx.put(k, v);
        },
        { ack },
      ),
    whenReady: (): Promise<ReadyInfo> => need().whenReady(),
    /** A `copy`'s refresh (only what changed since its checkpoint). */
    refresh: (): Promise<ReadyInfo> => need().refresh(),
    /** Writes `key` with a relay ack and says how it went (errors keep their code here). */
    tryPut: async (
      key: string,
      value: unknown,
    ): Promise<{ ok: true } | { code: string; message: string }> => {
      try {
        await asAny(need()).put(key, value, { ack: 'relay' });
        return { ok: true };
      } catch (e) {
        const err = e as { code?: string; message?: string };
        return { code: err.code ?? 'unknown', message: err.message ?? String(e) };
      }
    },
    /** From now on, records the keys of every remote change the bucket's live query reports. */
    recordRemoteChanges: () => {
      remoteChanges.length = 0;
      need().watch({ prefix: '' }, (r) => {
        if (r.initial) return;
        for (const c of r.changes) if (c.source === 'remote') remoteChanges.push(c.key);
      });
    },
    remoteChanges: (): string[] => [...remoteChanges],
    /** The inspector's event log lines, newest first. */
    events: (): string[] =>
      [...document.querySelectorAll('[data-testid="inspector"] ol.log li')].map((li) => li.textContent ?? ''),
    setOnline: d.setOnline,
    seed: d.seed,
    /**
     * Starts writing `rate` new rows per second with keys `${prefix}-000001`, ... (each value
     * names its writer and number). `writerStats().keys` lists those acknowledged, in order.
     */
    startWriter: (opts: { prefix: string; rate: number; ack?: AckLevel }) => {
      writer?.stop();
      let n = 0;
      const by = d.status()?.replicaId ?? d.client.tabId;
      writer = new LoadGenerator<unknown>(
        asAny(need()),
        (count) => {
          const out: [string, unknown][] = [];
          for (let i = 0; i < count; i++) {
            n++;
            const key = `${opts.prefix}-${String(n).padStart(6, '0')}`;
            out.push([
              key,
              { name: `${opts.prefix} write ${n}`, qty: n, price: 100 + n, location: 'load', by },
            ]);
          }
          return out;
        },
        { ack: opts.ack ?? 'local', keepKeys: true },
      );
      writer.start(opts.rate);
    },
    /** Stops the writer and waits for its last write to settle. */
    stopWriter: async (): Promise<LoadStats & { keys: string[] }> => {
      writer?.stop();
      await writer?.idle();
      return hook.writerStats();
    },
    writerStats: (): LoadStats & { keys: string[] } => ({
      ...(writer?.stats ?? { running: false, rate: 0, issued: 0, acked: 0, failed: 0, lastError: null }),
      keys: [...(writer?.ackedKeys ?? [])],
    }),
  };

  d.client.onStatus((s) => {
    const b = s.buckets.find((x) => x.bucket === d.config.bucket);
    const point: StatusPoint = {
      at: Date.now(),
      connection: s.connection,
      hosting: s.hosting,
      phase: b?.phase ?? 'none',
      ready: b?.ready ?? false,
      checkpoint: b?.checkpoint ?? 0,
      pending: b?.pending ?? 0,
      pages: b?.progress.pages ?? 0,
      entries: b?.progress.entries ?? 0,
      lastError: b?.lastError ? `${b.lastError.code}: ${b.lastError.message}` : null,
    };
    const prev = history[history.length - 1];
    const changed =
      prev === undefined ||
      prev.connection !== point.connection ||
      prev.phase !== point.phase ||
      prev.ready !== point.ready ||
      prev.hosting !== point.hosting ||
      prev.lastError !== point.lastError ||
      prev.pages !== point.pages;
    if (changed) {
      history.push(point);
      if (history.length > 5000) history.splice(0, 1000);
    }
    if (capture && firstReady === null && b?.phase === 'ready') {
      // Normally the table's rows are loaded by now; if its initial result is still on the
      // way (the page was opened on an already ready replica), take them when it arrives.
      if (d.model.loaded) takeReady();
      else readyPending = true;
    }
  });
  d.model.onApply(() => {
    if (readyPending && d.model.loaded) {
      readyPending = false;
      takeReady();
    }
  });

  (window as unknown as { __mittsync: typeof hook }).__mittsync = hook;
  return hook;
}

/** The type of `window.__mittsync` (the e2e tests import it). */
export type MittsyncTestHook = ReturnType<typeof installTestHook>;
