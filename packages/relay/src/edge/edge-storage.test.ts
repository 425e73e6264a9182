import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Miniflare } from 'miniflare';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { COMPATIBILITY_DATE } from '../node/edge-local';
import { AlarmTimers } from './alarm-env';
import type { DriverReport } from './testing/sql-probe';
import type { TestOutcome } from './testing/vitest-shim';

/** `ctx.storage` as far as the timers go: one alarm, the last one set. */
class FakeAlarmStorage {
  alarm: number | null = null;
  readonly sets: number[] = [];
  deletes = 0;
  setAlarm(at: number): void {
    this.alarm = at;
    this.sets.push(at);
  }
  deleteAlarm(): void {
    this.alarm = null;
    this.deletes++;
  }
}

describe('AlarmTimers', () => {
  const T0 = 1_700_000_000_000;
  let storage: FakeAlarmStorage;
  let timers: AlarmTimers;
  let ran: string[];

  /** The platform's part: at the alarm's time it clears the alarm and calls the handler. */
  function ring(): void {
    const at = storage.alarm;
    if (at === null) throw new Error('no alarm is set');
    vi.setSystemTime(at);
    storage.alarm = null;
    timers.fire();
  }
  const note = (name: string) => () => void ran.push(name);

  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(T0);
    storage = new FakeAlarmStorage();
    timers = new AlarmTimers(storage);
    ran = [];
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('sets the storage alarm to the earliest deadline, and only when it moves earlier', () => {
    timers.setTimeout(note('a'), 500);
    timers.setTimeout(note('b'), 100);
    timers.setTimeout(note('c'), 300);
    expect(storage.sets).toEqual([T0 + 500, T0 + 100]);
    expect(storage.alarm).toBe(T0 + 100);
    expect(timers.size).toBe(3);
    expect(ran).toEqual([]);
  });

  it('moves the alarm to the next deadline when the armed timer is cleared, and removes it when none is left', () => {
    timers.setTimeout(note('a'), 500);
    const b = timers.setTimeout(note('b'), 100);
    const c = timers.setTimeout(note('c'), 300);
    timers.clearTimeout(b);
    timers.clearTimeout(undefined);
    timers.clearTimeout('not a handle');
    expect(timers.size).toBe(2);
    // The object is not woken for the cleared timer.
    expect(storage.alarm).toBe(T0 + 300);
    ring();
    expect(ran).toEqual(['c']);
    expect(storage.alarm).toBe(T0 + 500);
    // Clearing a timer that is not the armed one leaves the alarm alone.
    const d = timers.setTimeout(note('d'), 900);
    timers.clearTimeout(d);
    expect(storage.alarm).toBe(T0 + 500);
    ring();
    expect(ran).toEqual(['c', 'a']);
    expect(storage.alarm).toBeNull();
    expect(timers.size).toBe(0);
    // A hello timeout cleared by its hello: the alarm goes away altogether.
    const e = timers.setTimeout(note('e'), 100);
    expect(storage.alarm).not.toBeNull();
    timers.clearTimeout(e);
    expect(storage.alarm).toBeNull();
    expect(storage.deletes).toBe(1);
    timers.clearTimeout(c);
    expect(ran).toEqual(['c', 'a']);
  });

  it('runs the other due timers and re-arms when one of them throws, reporting the error', () => {
    const errors: unknown[] = [];
    timers = new AlarmTimers(storage, (e) => errors.push(e));
    timers.setTimeout(note('a'), 100);
    timers.setTimeout(() => {
      throw new Error('boom');
    }, 100);
    timers.setTimeout(note('b'), 100);
    timers.setTimeout(note('c'), 400);
    ring();
    expect(ran).toEqual(['a', 'b']);
    expect(errors.map((e) => (e as Error).message)).toEqual(['boom']);
    expect(storage.alarm).toBe(T0 + 400);
  });

  it('runs every due timer in deadline order when the alarm fires, then arms the next deadline', () => {
    timers.setTimeout(note('c@300'), 300);
    timers.setTimeout(note('a@100'), 100);
    timers.setTimeout(note('b@200'), 200);
    timers.setTimeout(note('d@700'), 700);
    timers.setTimeout(note('b2@200'), 200);
    // The platform may run the handler late: everything due by then runs, nothing after.
    vi.setSystemTime(T0 + 250);
    storage.alarm = null;
    timers.fire();
    expect(ran).toEqual(['a@100', 'b@200', 'b2@200']);
    expect(storage.alarm).toBe(T0 + 300);
    ring();
    expect(ran).toEqual(['a@100', 'b@200', 'b2@200', 'c@300']);
    expect(storage.alarm).toBe(T0 + 700);
    ring();
    expect(ran.at(-1)).toBe('d@700');
    expect(storage.alarm).toBeNull();
    expect(timers.size).toBe(0);
  });

  it('re-arms for the next deadline when the alarm fires before any timer is due', () => {
    timers.setTimeout(note('a'), 100);
    vi.setSystemTime(T0 + 50);
    storage.alarm = null;
    timers.fire();
    expect(ran).toEqual([]);
    expect(storage.alarm).toBe(T0 + 100);
    ring();
    expect(ran).toEqual(['a']);
  });

  it('arms the earliest deadline for timers set from inside a firing timer', () => {
    timers.setTimeout(note('d@1000'), 1000);
    timers.setTimeout(() => {
      ran.push('a@100');
      // Later than the pending d: the alarm must still end up at d's deadline.
      timers.setTimeout(note('e@2100'), 2000);
    }, 100);
    ring();
    expect(ran).toEqual(['a@100']);
    expect(storage.alarm).toBe(T0 + 1000);
    ring();
    expect(ran).toEqual(['a@100', 'd@1000']);
    expect(storage.alarm).toBe(T0 + 2100);
    ring();
    expect(ran).toEqual(['a@100', 'd@1000', 'e@2100']);
    expect(storage.alarm).toBeNull();
  });

  it('arms the alarm at once for a zero-delay timer set from inside a firing timer, and runs it next', () => {
    timers.setTimeout(note('d@1000'), 1000);
    timers.setTimeout(() => {
      ran.push('a@100');
      timers.setTimeout(note('e@2100'), 2000);
      timers.setTimeout(note('f@100'), 0);
    }, 100);
    ring();
    expect(storage.alarm).toBe(T0 + 100);
    ring();
    ring();
    ring();
    expect(ran).toEqual(['a@100', 'f@100', 'd@1000', 'e@2100']);
    expect(storage.alarm).toBeNull();
    expect(timers.size).toBe(0);
  });
});

// -------------------------------------------------------------------------------------------
// DurableSqlDriver over a real Durable Object's ctx.storage, on workerd
// -------------------------------------------------------------------------------------------

const here = dirname(fileURLToPath(import.meta.url));

interface Probe {
  /** GETs `path` from a fresh object (its own empty database) and returns the JSON answer. */
  ask<T>(path: string): Promise<T>;
  close(): Promise<void>;
}

/**
 * Bundles testing/sql-probe.ts as buildEdgeWorker bundles the relay (esbuild, the Workers
 * conditions), with `vitest` resolved to the probe's own describe/it/expect so core's shared
 * suites run inside the object, and starts it on workerd through Miniflare.
 */
async function startProbe(): Promise<Probe> {
  const { build } = await import('esbuild');
  const { Miniflare } = await import('miniflare');
  const dir = mkdtempSync(join(tmpdir(), 'mittsync-sql-probe-'));
  const outfile = join(dir, 'probe.js');
  await build({
    entryPoints: [resolve(here, 'testing/sql-probe.ts')],
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    conditions: ['source', 'workerd', 'worker', 'browser'],
    target: 'es2022',
    logLevel: 'warning',
    alias: { vitest: resolve(here, 'testing/vitest-shim.ts') },
  });
  const mf: Miniflare = new Miniflare({
    modules: true,
    scriptPath: outfile,
    modulesRoot: dir,
    compatibilityDate: COMPATIBILITY_DATE,
    durableObjects: { PROBE: { className: 'SqlProbe', useSQLite: true } },
    cf: false,
  });
  await mf.ready;
  let n = 0;
  return {
    async ask<T>(path: string): Promise<T> {
      const res = await mf.dispatchFetch(`http://probe${path}?object=o${++n}`);
      const body = (await res.json()) as T;
      if (res.status !== 200) throw new Error(`${path}: HTTP ${res.status} ${JSON.stringify(body)}`);
      return body;
    },
    async close() {
      await mf.dispose();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('DurableSqlDriver on workerd (a SQLite-backed Durable Object)', () => {
  let probe: Probe | undefined;
  let report: DriverReport;
  const u8 = (bytes: number[]) => ({ type: 'Uint8Array', bytes });

  beforeAll(async () => {
    probe = await startProbe();
    report = await probe.ask<DriverReport>('/driver');
  }, 60_000);
  afterAll(async () => {
    await probe?.close();
  });

  it('rolls back an inner transaction that throws, and the outer one commits the rest', () => {
    expect(report.innerThrew).toEqual({
      keys: ['outer-after', 'outer-before'],
      error: 'inner boom',
      innerSawOuter: true,
    });
  });

  it('rolls back everything, committed inner transactions included, when the outer one throws', () => {
    expect(report.outerThrew).toEqual({ keys: [], error: 'outer boom' });
    expect(report.returned).toEqual({ answer: 42 });
  });

  it('stores a Uint8Array view with a nonzero byteOffset as exactly its bytes, read back as Uint8Array', () => {
    const { blob } = report;
    expect(blob.written).toEqual({ byteOffset: 5, byteLength: 7, bufferLength: 32 });
    expect(blob.stored).toEqual({ type: 'blob', length: 7, hex: '05060708090A0B' });
    expect(blob.exec).toEqual(u8([5, 6, 7, 8, 9, 10, 11]));
    expect(blob.execRaw).toEqual(u8([5, 6, 7, 8, 9, 10, 11]));
    // Bound in a WHERE clause, the same view finds its row.
    expect(blob.matchedBy).toEqual([[1]]);
    // A view at offset 0 but shorter than its buffer is its own bytes too.
    expect(blob.prefix).toEqual(u8([0, 1, 2]));
  });

  it('returns execRaw rows as arrays in column order (duplicate names kept), exec rows as objects', () => {
    const { execRaw } = report;
    expect(execRaw.row).toEqual([[1, 'x', null, u8([10, 11]), 2.5]]);
    expect(execRaw.duplicateNames).toEqual([[1, 2]]);
    expect(execRaw.empty).toEqual([]);
    expect(execRaw.exec).toEqual([{ a: 1, b: 'x', c: null, d: u8([10, 11]), e: 2.5 }]);
  });

  it('passes the HostStore contract suite with SqlHostStore inside the object', async () => {
    const outcomes = await (probe as Probe).ask<TestOutcome[]>('/host-store');
    const failed = outcomes.filter((o) => o.error !== undefined);
    expect(failed).toEqual([]);
    // Every part ran, reopening and sibling buckets included.
    expect(outcomes.length).toBeGreaterThanOrEqual(29);
    // Pages read by column (one SQL row per page), and joins served from a host's page cache,
    // run on workerd's SQLite too.
    expect(outcomes.filter((o) => o.name.includes('pages by column'))).toHaveLength(4);
    expect(outcomes.some((o) => o.name.includes("host's page cache"))).toBe(true);
    expect(outcomes.some((o) => o.name.includes('reopening'))).toBe(true);
    expect(outcomes.some((o) => o.name.includes('latest refusals'))).toBe(true);
    expect(outcomes.some((o) => o.name.includes('several buckets in one storage'))).toBe(true);
  });
});
