import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runRelayFuzzTests } from '@mittsync/core/testing';
import { signToken } from '../auth';
import { createNodeSocket } from '../testing';
import { startNodeRelay } from './server';

const secret = 'fuzz-secret-fuzz-secret-fuzz-secret!';
const env = (name: string): number | undefined =>
  process.env[name] === undefined ? undefined : Number(process.env[name]);

// MITTSYNC_FUZZ_RUNS=100000 for a nightly run; MITTSYNC_FUZZ_SEED / MITTSYNC_FUZZ_PATH replay a
// failure fast-check printed.
runRelayFuzzTests(
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mittsync-fuzz-'));
    const relay = await startNodeRelay({
      port: 0,
      host: '127.0.0.1',
      data: dir,
      auth: { secret },
      // Each run opens fresh sockets and reads over HTTP: far more than a real client per minute.
      limits: { connectionsPerAddressPerMinute: 1e9, httpRequestsPerAddressPerMinute: 1e9 },
    });
    return {
      url: relay.url,
      httpUrl: relay.httpUrl,
      createSocket: createNodeSocket,
      makeToken: (c) => signToken(secret, c),
      close: async () => {
        await relay.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
  {
    runs: env('MITTSYNC_FUZZ_RUNS') ?? 200,
    ...(env('MITTSYNC_FUZZ_SEED') === undefined ? {} : { seed: env('MITTSYNC_FUZZ_SEED') }),
    ...(process.env.MITTSYNC_FUZZ_PATH === undefined ? {} : { path: process.env.MITTSYNC_FUZZ_PATH }),
  },
);
