import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MemoryReplicaStorage, Replica } from '@mittsync/core';
import { devToken } from '@mittsync/peer';
import { type RelayProcess, spawnRelayProcess, WebSocketTransport } from '@mittsync/relay/node';
import type { BenchApi } from '../../peer-page/bench-page';
import { benchKey, benchValue } from '../../peer-page/data';

/**
 * What every browser peer benchmark stands on: the bench page (`apps/bench/src/peer-page`, built
 * with Vite), the relay CLI serving it, and Node replicas that seed and write over WebSockets.
 */

const here = dirname(fileURLToPath(import.meta.url));
export const root = join(here, '..', '..', '..', '..', '..');
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A relay serving the bench page: the Node relay process, or the edge relay on workerd. */
export type RunningRelay = Pick<RelayProcess, 'url' | 'httpUrl' | 'stop'>;

/** Starts a relay in dev mode serving `staticDir`, on `data` when given. */
export type RelayStarter = (
  staticDir: string,
  opts?: { data?: string; profile?: boolean },
) => Promise<RunningRelay>;

let built: Promise<string> | undefined;

/** Builds the bench page (and its worker) once per process. */
export function buildPage(): Promise<string> {
  built ??= (async () => {
    const { build, defaultClientConditions } = await import('vite');
    const outDir = mkdtempSync(join(tmpdir(), 'mittsync-peer-page-'));
    process.once('exit', () => rmSync(outDir, { recursive: true, force: true }));
    await build({
      root: join(root, 'apps', 'bench', 'src', 'peer-page'),
      logLevel: 'warn',
      build: { outDir, emptyOutDir: true, target: 'es2022', minify: process.env.PEER_PROFILE === undefined },
      worker: { format: 'es' },
      resolve: { conditions: ['source', ...defaultClientConditions] },
    });
    return outDir;
  })();
  return built;
}

/** The relay CLI serving the bench page, with limits no benchmark reaches. */
export function startRelay(
  staticDir: string,
  opts: { data?: string; profile?: boolean } = {},
): Promise<RunningRelay> {
  return spawnRelayProcess({
    dev: true,
    ...(opts.data === undefined ? {} : { data: opts.data }),
    limits: {
      connectionsPerAddressPerMinute: 1_000_000,
      httpRequestsPerAddressPerMinute: 1_000_000,
      opsPerConnectionPerSecond: 10_000_000,
    },
    // PAGE_CACHE_MB=0: the relay without its page cache, for experiments (default otherwise).
    args: [
      '--static',
      staticDir,
      ...(process.env.PAGE_CACHE_MB === undefined ? [] : ['--page-cache-mb', process.env.PAGE_CACHE_MB]),
    ],
    // RELAY_PROFILE=DIR: the relay writes a CPU profile there when it stops.
    ...(process.env.RELAY_PROFILE === undefined || opts.profile !== true
      ? {}
      : {
          nodeArgs: ['--cpu-prof', '--cpu-prof-interval', '200', '--cpu-prof-dir', process.env.RELAY_PROFILE],
        }),
  });
}

/** A Node replica on the relay (memory storage), authenticated with a dev token. */
export async function nodeReplica(relay: RunningRelay, name: string): Promise<Replica> {
  // A dev relay hands an id to its first caller only: unique per run, renewed by devToken.
  const id = `${name}-${Math.random().toString(36).slice(2, 10)}`;
  const tokens = devToken(relay.httpUrl);
  return Replica.open({
    storage: new MemoryReplicaStorage(),
    transport: new WebSocketTransport({ url: relay.url, getToken: () => tokens({ replicaId: id }) }),
    replicaId: id,
  });
}

/** Writes `n` keys with relay acks, in transactions of 5,000. */
export async function seed(relay: RunningRelay, bucket: string, n: number): Promise<void> {
  const r = await nodeReplica(relay, 'seeder');
  await r.openBucket(bucket);
  // Joined first: a join that overlaps the writes would download them again as pages.
  await r.whenReady(bucket);
  for (let start = 0; start < n; start += 5000) {
    const writes = [];
    for (let i = start; i < Math.min(n, start + 5000); i++)
      writes.push({ key: benchKey(i), value: benchValue(i) });
    await r.transact(bucket, writes, { ack: 'relay' });
  }
  await r.close();
}

/** Another replica writing `perSecond` ops/s to random existing keys until stopped. */
export async function backgroundWriter(relay: RunningRelay, bucket: string, n: number, perSecond: number) {
  const r = await nodeReplica(relay, 'writer');
  await r.openBucket(bucket);
  // A writer that is already in sync, as the scenario says: its own catch-up would otherwise
  // run during the first join, doubling the relay's reads and loading the same two cores.
  await r.whenReady(bucket);
  let stop = false;
  let rev = 0;
  const loop = (async () => {
    const every = 10;
    const per = Math.max(1, Math.round((perSecond * every) / 1000));
    let next = performance.now();
    while (!stop) {
      rev++;
      const writes = Array.from({ length: per }, () => {
        const i = Math.floor(Math.random() * n);
        return { key: benchKey(i), value: benchValue(i, rev) };
      });
      await r.transact(bucket, writes);
      next += every;
      await sleep(Math.max(0, next - performance.now()));
    }
  })();
  return async () => {
    stop = true;
    await loop;
    await r.close();
  };
}

export type PageApi = { mittsyncBench: BenchApi };
