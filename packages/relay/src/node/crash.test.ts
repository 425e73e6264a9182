import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Replica } from '@mittsync/core';
import { afterAll, expect, it } from 'vitest';
import { signToken } from '../auth';
import {
  convergedWithRelay,
  createNodeSocket,
  openReplica,
  type RelayUnderTest,
  rawClient,
  relayEntries,
  sleep,
  startAckedWriters,
} from '../testing';
import { spawnRelayProcess } from './process';

const secret = 'crash-test-secret-crash-test-secret';
const KILLS = Number(process.env.CRASH_KILLS ?? 20);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() =>
        typeof addr === 'object' && addr !== null ? resolve(addr.port) : reject(new Error('no port')),
      );
    });
  });
}

/** Starts the real CLI (the package's bin) as a child process and waits until it listens. */
async function spawnRelay(port: number, dir: string): Promise<ChildProcess> {
  const relay = await spawnRelayProcess({
    port,
    data: dir,
    secret,
    limits: { connectionsPerAddressPerMinute: 100_000 },
  });
  return relay.child;
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

const dir = mkdtempSync(join(tmpdir(), 'mittsync-crash-'));
let child: ChildProcess | undefined;
afterAll(() => {
  child?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

it(`loses no acked op when the relay is SIGKILLed ${KILLS} times under load`, async () => {
  const port = await freePort();
  child = await spawnRelay(port, dir);
  const relay: RelayUnderTest = {
    url: `ws://127.0.0.1:${port}/v1/sync`,
    httpUrl: `http://127.0.0.1:${port}`,
    createSocket: createNodeSocket,
    makeToken: (c) => signToken(secret, c),
    close: async () => undefined,
  };
  const bucket = 'crash';
  const writers = await Promise.all(
    [0, 1, 2].map((i) => openReplica(relay, { sub: `writer${i}`, ackTimeoutMs: 1000 })),
  );
  const reader = await openReplica(relay, { sub: 'reader', ackTimeoutMs: 1000 });
  await reader.openBucket(bucket);

  const { written, acked, deleted, stop } = startAckedWriters(writers, bucket);

  for (let k = 0; k < KILLS; k++) {
    await sleep(250 + Math.random() * 900);
    child.kill('SIGKILL');
    expect((await exited(child)).signal).toBe('SIGKILL');
    child = await spawnRelay(port, dir);
  }
  await sleep(500);
  await stop();

  const token = await signToken(secret, { sub: 'auditor', read: ['*'] });
  await convergedWithRelay(relay, bucket, [...writers, reader], token, 60_000);
  const onRelay = new Map((await relayEntries(relay, bucket, token)).map((e) => [e.key, e]));
  // Every op acked at relay level is on the relay; a key deleted later is not live there (its
  // tombstone may be purged: every replica acknowledged it).
  expect(acked.size).toBeGreaterThan(100);
  expect([...deleted].filter((k) => onRelay.has(k) && onRelay.get(k)?.deleted !== true)).toEqual([]);
  const lost = [...acked].filter((k) => !onRelay.has(k) && !deleted.has(k));
  expect(lost).toEqual([]);
  // And since the writers lived on, their outboxes delivered every write, acked or not.
  expect([...written].filter((k) => !onRelay.has(k) && !deleted.has(k))).toEqual([]);

  // Graceful shutdown: sockets are closed with 1012 and the process exits cleanly.
  const watcher = await rawClient(relay, 'watcher');
  child.kill('SIGTERM');
  expect((await watcher.closed).code).toBe(1012);
  expect(await exited(child)).toEqual({ code: 0, signal: null });
  await Promise.all([...writers, reader].map((r: Replica) => r.close()));
}, 170_000);
