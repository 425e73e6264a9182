import { spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signToken } from '@mittsync/relay';
import { RELAY_BIN, spawnRelayProcess } from '@mittsync/relay/node';
import type { Metric } from '../metric';
import { BENCH_SECRET } from './relay';

/**
 * `mittsync import` and `mittsync export` as a user runs them: the CLI as a child process
 * against the Node relay CLI (another child process, SQLite file, durable acks) on loopback,
 * timed from spawn to exit (process start included). Import reads an NDJSON file of small
 * objects; export writes the whole bucket back to a file. The relay's per-address op rate
 * limit (50k ops/s by default) is raised, as for the other relay figures: these measure the
 * CLI and the HTTP API, not the limit.
 */

const LIMITS = { opsPerConnectionPerSecond: 10_000_000, httpRequestsPerAddressPerMinute: 1_000_000 };

interface Prepared {
  dir: string;
  file: string;
  count: number;
  /** The relay's data after the import (export restarts a relay on it). */
  data: string;
  imported: boolean;
}

const prepared = new Map<number, Prepared>();
process.on('exit', () => {
  for (const p of prepared.values()) rmSync(p.dir, { recursive: true, force: true });
});

async function writeRecords(file: string, count: number): Promise<void> {
  const out = createWriteStream(file);
  for (let i = 0; i < count; i++) {
    const line = `${JSON.stringify({ key: `item:${String(i).padStart(7, '0')}`, value: { title: `item ${i}`, qty: i % 100, done: i % 3 === 0 } })}\n`;
    if (!out.write(line)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((r) => out.end(r));
}

function prepare(count: number): Prepared {
  let p = prepared.get(count);
  if (p === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'mittsync-cli-bench-'));
    p = { dir, file: join(dir, 'records.ndjson'), count, data: join(dir, 'relay'), imported: false };
    prepared.set(count, p);
  }
  return p;
}

/** Runs the CLI to completion; resolves with its wall time in seconds. */
function timedCli(args: string[], env: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, [RELAY_BIN, ...args, '--quiet'], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.once('error', reject);
    child.once('close', (code) => {
      if (code === 0) resolve((performance.now() - started) / 1000);
      else reject(new Error(`mittsync ${args[0]} exited ${code}: ${err}`));
    });
  });
}

async function withRelay<T>(p: Prepared, fn: (env: Record<string, string>) => Promise<T>): Promise<T> {
  const relay = await spawnRelayProcess({ secret: BENCH_SECRET, data: p.data, limits: LIMITS });
  try {
    const token = await signToken(BENCH_SECRET, { sub: 'cliBench', read: ['*'], write: ['*'], ttlS: 3600 });
    return await fn({ MITTSYNC_RELAY: relay.httpUrl, MITTSYNC_TOKEN: token });
  } finally {
    await relay.stop();
  }
}

async function importSeconds(count: number): Promise<number> {
  const p = prepare(count);
  await writeRecords(p.file, count);
  rmSync(p.data, { recursive: true, force: true });
  rmSync(`${p.file}.cli-bench.mittsync-import.json`, { force: true });
  const s = await withRelay(p, (env) => timedCli(['import', 'cli-bench', p.file, '--restart'], env));
  p.imported = true;
  return s;
}

async function exportSeconds(count: number): Promise<number> {
  const p = prepare(count);
  if (!p.imported) await importSeconds(count);
  const out = join(p.dir, 'export.ndjson');
  const s = await withRelay(p, (env) => timedCli(['export', 'cli-bench', '--out', out], env));
  // The export holds every record, byte for byte what was imported (same key order).
  if (statSync(out).size !== statSync(p.file).size || !readFileSync(out).equals(readFileSync(p.file)))
    throw new Error('the export differs from the imported file');
  return s;
}

export const cliMetrics: Metric[] = [
  {
    name: 'import_1m_s',
    quickName: 'import_100k_s',
    unit: 's',
    description:
      '`mittsync import` of an NDJSON file of 1,000,000 small objects (100,000 with --quick) into an empty bucket of the Node relay, 2,000-op acked pushes over HTTP, wall time of the CLI process',
    run: ({ quick }) => importSeconds(quick ? 100_000 : 1_000_000),
  },
  {
    name: 'export_1m_s',
    quickName: 'export_100k_s',
    unit: 's',
    description:
      '`mittsync export` of the 1,000,000-entry bucket (100,000 with --quick) to an NDJSON file, 10,000-entry pages over HTTP, wall time of the CLI process; the file is checked equal to the imported one',
    run: ({ quick }) => exportSeconds(quick ? 100_000 : 1_000_000),
  },
];
