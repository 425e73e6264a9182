import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeFrame, encodeValue } from '@mittsync/core';
import { encodeHlc } from '@mittsync/core/model';
import { SqlHostStore } from '@mittsync/relay';
import { SqliteDriver } from '@mittsync/relay/node';
import { type Metric, percentile } from '../metric';

/**
 * Physical floors of the relay's headline figures: what the same machine does with the same
 * work minus Mittsync. SQLite alone for `relay_ingest_ops_s`, a bare `ws` echo for
 * `write_observe_p50_ms`; main.ts prints each headline figure's ratio to its floor.
 */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Rows per transaction: relay_ingest_ops_s's group commits held 3,992 ops on average (its
 * relay's `mittsync_ops_in_total` over `mittsync_commit_seconds_count`, 6 s of ingest: about
 * 8 of the 16 frames in flight per turn of the event loop), so the floor commits 4,000.
 */
const ROWS_PER_COMMIT = 4000;
const FRAME_OPS = 500;
const WRITERS = 4;

/**
 * Upserts per second into the relay's `entries` table, opened as the relay opens it
 * (SqliteDriver: WAL, synchronous=FULL, 64 MB page cache, exclusive lock; SqlHostStore creates
 * the schema and the bucket row), with the relay's upsert statement, 4,000 rows per
 * transaction, and ingest's entries: keys `w<i>-<n>` of 4 writers interleaved frame by frame,
 * a MessagePack value `{ n, text: 'an ingest op' }`, an HLC of a 16-character replica id,
 * increasing seqs. No protocol, socket, LWW decision, `received` row or bucket-head update.
 */
async function sqliteFloor(quick: boolean): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'mittsync-floor-'));
  const driver = new SqliteDriver(join(dir, 'relay.db'));
  try {
    new SqlHostStore(driver, 'ingest');
    const b = (
      driver.exec<{ id: number }>('SELECT id FROM buckets WHERE name = ?', 'ingest')[0] as { id: number }
    ).id;
    // The statement SqlHostStore.putEntry runs, prepared once as SqliteDriver caches it.
    const upsert = driver.db.prepare(
      `INSERT INTO entries (b, sort_key, astral_key, hlc, seq, deleted, value) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (b, sort_key) DO UPDATE SET hlc = excluded.hlc, seq = excluded.seq, deleted = excluded.deleted, value = excluded.value`,
    );
    const origins = Array.from({ length: WRITERS }, (_, i) => `floor-writer-00${i}`);
    const next = new Array<number>(WRITERS).fill(0);
    let seq = 0;
    let frame = 0;
    const commit = driver.db.transaction(() => {
      for (let f = 0; f < ROWS_PER_COMMIT / FRAME_OPS; f++, frame++) {
        const w = frame % WRITERS;
        const wall = Date.now();
        for (let k = 0; k < FRAME_OPS; k++) {
          const n = next[w] as number;
          next[w] = n + 1;
          // An ASCII key's sort key is its UTF-8 (sort-key.ts); it has no astral_key.
          const key = `w${w}-${n}`;
          upsert.run(
            b,
            Buffer.from(key),
            null,
            encodeHlc(wall, k, origins[w] as string),
            ++seq,
            0,
            encodeValue({ n: n + 1, text: 'an ingest op' }),
          );
        }
      }
    });
    const run = (ms: number) => {
      const end = performance.now() + ms;
      let rows = 0;
      while (performance.now() < end) {
        commit();
        rows += ROWS_PER_COMMIT;
      }
      return rows;
    };
    run(500); // warm-up, as ingest's: JIT, SQLite pages, WAL
    const t0 = performance.now();
    const rows = run((quick ? 2 : 6) * 1000);
    const result = rows / ((performance.now() - t0) / 1000);
    // Keep the floor honest: the relay's own store reads back what the floor wrote.
    const probe = new SqlHostStore(driver, 'ingest').getEntry('w1-7');
    if (probe?.seq === undefined || (probe.value as { n?: number }).n !== 8)
      throw new Error(`floor rows do not read back as relay entries: ${JSON.stringify(probe)}`);
    return Math.round(result);
  } finally {
    driver.close();
    rmSync(dir, { recursive: true, force: true });
    // As the relay benchmarks do: let the disk write back before the next benchmark.
    spawnSync('sync');
    await sleep(1000);
  }
}

/** A bare `ws` echo server on a loopback port, in a child process; prints its port. */
const ECHO_SERVER = `
const { WebSocketServer } = require(process.argv[1]);
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
wss.on('listening', () => console.log(wss.address().port));
`;

/** The part of a `ws` client socket used here. */
interface WsClient {
  binaryType: string;
  once(event: 'open' | 'error', listener: (e?: unknown) => void): void;
  on(event: 'message', listener: (data: Buffer) => void): void;
  send(data: Uint8Array): void;
  close(): void;
}
type WsClientClass = new (url: string, opts: { perMessageDeflate: boolean }) => WsClient;

let rttRun: Promise<{ p50: number; p99: number }> | undefined;

/**
 * `ws` round trips over loopback: the relay's own `ws` (resolved from @mittsync/relay), no
 * compression as the relay and its transport run it, a client in this process and an echo
 * server in a child process. The frame is a real one-op push frame (write_observe's op:
 * `{ i, at }` under `k<i>` with a 16-character replica id), sent 200 times a second like
 * write_observe's puts: 200 warm-up round trips, then 2,000 samples.
 */
function wsRtt(): Promise<{ p50: number; p99: number }> {
  rttRun ??= (async () => {
    const req = createRequire(createRequire(import.meta.url).resolve('@mittsync/relay/package.json'));
    const wsPath = req.resolve('ws');
    const WebSocket = (req('ws') as { WebSocket: WsClientClass }).WebSocket;
    const child: ChildProcess = spawn(process.execPath, ['-e', ECHO_SERVER, wsPath], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const port = await new Promise<number>((resolve, reject) => {
        child.once('error', reject);
        child.once('exit', (code) => reject(new Error(`echo server exited with ${code}`)));
        child.stdout?.once('data', (d: Buffer) => resolve(Number(String(d).trim())));
      });
      const ws = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false });
      ws.binaryType = 'nodebuffer';
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      const frame = encodeFrame({
        type: 'push',
        bucket: 'observe',
        ops: [
          {
            origin: 'writer-000000000',
            originSeq: 1201,
            key: 'k1200',
            kind: 'set',
            value: { i: 1200, at: Date.now() },
            hlc: encodeHlc(Date.now(), 0, 'writer-000000000'),
          },
        ],
      });
      let echoed: (() => void) | undefined;
      ws.on('message', (data) => {
        if (data.byteLength !== frame.byteLength) throw new Error(`echo of ${data.byteLength} bytes`);
        echoed?.();
      });
      const rate = 200;
      const warmup = 200;
      const total = 2000;
      const samples: number[] = [];
      const start = performance.now();
      for (let i = 0; i < warmup + total; i++) {
        const wait = start + (i * 1000) / rate - performance.now();
        if (wait > 0) await sleep(wait);
        const t0 = performance.now();
        await new Promise<void>((resolve) => {
          echoed = resolve;
          ws.send(frame);
        });
        if (i >= warmup) samples.push(performance.now() - t0);
      }
      ws.close();
      samples.sort((x, y) => x - y);
      return { p50: percentile(samples, 0.5), p99: percentile(samples, 0.99) };
    } finally {
      child.kill();
    }
  })();
  return rttRun;
}

export const floorMetrics: Metric[] = [
  {
    name: 'sqlite_floor_ops_s',
    unit: 'ops/s',
    description:
      "Floor of relay_ingest_ops_s: upserts per second into the relay's entries table, opened in this process as the relay opens it (SqliteDriver: WAL, synchronous=FULL, 64 MB page cache; SqlHostStore's schema and upsert statement), 4,000 rows per transaction (ingest's average group commit), ingest's keys and values from 4 interleaved writers; no protocol, network or LWW; 6 s (--quick: 2 s) after 0.5 s warm-up.",
    run: ({ quick }) => sqliteFloor(quick),
  },
  {
    name: 'ws_rtt_p50_ms',
    unit: 'ms',
    description:
      'Floor of write_observe_p50_ms: median round trip of a one-op push frame (115 bytes) from a `ws` client in this process to a bare `ws` echo server in a child process over loopback, paced at 200/s like write_observe; 2,000 samples after 200 warm-up (--quick: the same).',
    repetitions: { full: 2000, quick: 2000, of: 'samples' },
    run: async () => (await wsRtt()).p50,
  },
  {
    name: 'ws_rtt_p99_ms',
    unit: 'ms',
    description: 'The 99th percentile of the same run as ws_rtt_p50_ms.',
    repetitions: { full: 2000, quick: 2000, of: 'samples' },
    run: async () => (await wsRtt()).p99,
  },
];
