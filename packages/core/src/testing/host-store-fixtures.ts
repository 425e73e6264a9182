import { columnEntries } from '../columns';
import type { Env } from '../env';
import { encodeHlc, type Hlc } from '../hlc';
import type { BucketHost } from '../host';
import type { HostMeta, HostStore } from '../host-store';
import { type Entry, keyOrder, type Op, type Value } from '../model';
import type { PageMsg, PushMsg } from '../protocol';
import type { ReplicationSpec } from '../spec';

/**
 * How the HostStore suite gets stores. Setups may be async; the stores themselves are not.
 */
export interface HostStoreSetup {
  /** A fresh, empty store of one bucket. */
  create(): HostStore | Promise<HostStore>;
  /**
   * Closes the storage under `previous` and opens the same data again, as a restart would
   * (persistent stores only: close the database and open the same file).
   */
  reopen?(previous: HostStore): HostStore | Promise<HostStore>;
  /** A store of another bucket in the same storage as `store` (one database holding many buckets). */
  sibling?(store: HostStore): HostStore | Promise<HostStore>;
}

export const WALL = 1_700_000_000_000;
export const H = (n: number, node = 'w1'): Hlc => encodeHlc(WALL + n, 0, node);

export const live = (key: string, seq: number, value: Value = seq, hlc = H(seq)): Entry => ({
  key,
  hlc,
  seq,
  value,
});
export const tomb = (key: string, seq: number, hlc = H(seq)): Entry => ({ key, hlc, seq, deleted: true });

export function meta(patch: Partial<HostMeta> = {}): HostMeta {
  return { epoch: 'epoch-1', head: 0, horizon: 0, purgedHlc: '', sum: { count: 0, a: 0, b: 0 }, ...patch };
}

/** Writes as BucketHost does: the entries and the meta that advances the head, in one transaction. */
export function commit(s: HostStore, entries: Entry[], patch: Partial<HostMeta> = {}): void {
  s.transaction(() => {
    for (const e of entries) s.putEntry(e);
    const head = Math.max(s.loadMeta()?.head ?? 0, ...entries.map((e) => e.seq));
    s.saveMeta(meta({ ...(s.loadMeta() ?? {}), head, ...patch }));
  });
}

/** Every entry, read with the contract's own paging (`after` = the last key of a page). */
export function everything(s: HostStore, since = 0, until?: string, pageSize = 7): Entry[] {
  const out: Entry[] = [];
  let after: string | undefined;
  for (;;) {
    const page = s.scan(since, after, until, pageSize);
    out.push(...page);
    const last = page[page.length - 1];
    if (page.length < pageSize || last === undefined) return out;
    after = last.key;
  }
}

/** A deterministic shuffle, so stores never see keys in order by accident. */
export function shuffled<T>(xs: readonly T[], seed = 7): T[] {
  const out = [...xs];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

export const byKey = (es: readonly Entry[]): Entry[] => [...es].sort(keyOrder);
export const keysOf = (es: readonly Entry[]): string[] => es.map((e) => e.key);

/** Keys whose order is the same by UTF-16 units and by code points (none in U+E000..U+FFFF). */
export const KEYS = shuffled([
  'k',
  'k0',
  'k00',
  'k1',
  'K',
  'a b',
  'a/b',
  'a:b',
  'é',
  'e\u0301',
  '日本',
  '😀',
  '😀x',
  'z',
  '~',
  ...Array.from({ length: 40 }, (_, i) => `n${String(i).padStart(3, '0')}`),
]);

export const VALUES: Value[] = [
  null,
  true,
  false,
  0,
  -17,
  0.1,
  Number.MAX_SAFE_INTEGER,
  '',
  'é€😀 text',
  [],
  {},
  [1, 'two', null, [3], { four: 4 }],
  { nested: { list: [{ a: 1 }, { b: [true, null] }], s: 'x'.repeat(300) } },
];

export function fixedEnv(): Env {
  let s = 1;
  return {
    now: () => WALL + 60_000,
    setTimeout: () => 0,
    clearTimeout: () => undefined,
    random: () => {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      return s / 2 ** 32;
    },
  };
}

/** A push of `keys` from `origin`, originSeqs from `from`, clocks from `WALL + (wall ?? from)`. */
export function frame(
  origin: string,
  from: number,
  keys: string[],
  opts: { del?: boolean; wall?: number } = {},
): PushMsg {
  const del = opts.del ?? false;
  const ops: Op[] = keys.map((key, i) => {
    const originSeq = from + i;
    const hlc = encodeHlc(WALL + (opts.wall ?? from) + i, 0, origin);
    return del
      ? { origin, originSeq, key, kind: 'del', hlc }
      : { origin, originSeq, key, kind: 'set', value: { originSeq }, hlc };
  });
  return { type: 'push', bucket: 'b', ops };
}

/**
 * Every page of one key range of a join's download from `host` (`after < key <= until`),
 * following each page's `next`.
 */
export function pageRange(
  host: BucketHost,
  req: {
    limit: number;
    after?: string | undefined;
    until?: string | undefined;
    cols?: boolean;
    /** The subscription's spec (the relay passes it with every page). */
    spec?: ReplicationSpec;
  },
): PageMsg[] {
  const pages: PageMsg[] = [];
  let after = req.after;
  for (let reqId = 1; ; reqId++) {
    const page = host.page(
      {
        type: 'pageReq',
        bucket: host.bucket,
        reqId,
        since: 0,
        limit: req.limit,
        ...(after === undefined ? {} : { after }),
        ...(req.until === undefined ? {} : { until: req.until }),
        ...(req.cols === true ? { cols: true as const } : {}),
      },
      req.spec,
    ) as PageMsg;
    pages.push(page);
    if (page.next === null) return pages;
    after = page.next;
  }
}

/** A page's entries, whether it came by entry or by column. */
export const pageEntries = (page: PageMsg): Entry[] =>
  page.cols === undefined ? page.entries : columnEntries(page.cols);
