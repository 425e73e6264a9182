import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Replica } from '@mittsync/core';
import { afterAll, expect, it } from 'vitest';
import { signToken } from '../auth';
import { buildEdgeWorker, type EdgeRelay, startEdgeRelay } from '../node/edge-local';
import {
  convergedWithRelay,
  createNodeSocket,
  openReplica,
  type RelayUnderTest,
  relayEntries,
  sleep,
  startAckedWriters,
} from '../testing';

// The SIGKILL test (node/crash.test.ts) on the edge relay: Miniflare's dispose() SIGKILLs
// workerd, so every restart here kills the runtime in the middle of writes, with no chance to
// flush anything, and starts a new one on the same persisted directory and port.
const secret = 'edge-restart-secret-edge-restart-secret';
const RESTARTS = Number(process.env.EDGE_RESTARTS ?? 10);

const dir = mkdtempSync(join(tmpdir(), 'mittsync-edge-restart-'));
let edge: EdgeRelay | undefined;
const replicas: Replica[] = [];
afterAll(async () => {
  await Promise.all(replicas.map((r) => r.close()));
  await edge?.close();
  rmSync(dir, { recursive: true, force: true });
});

it(`loses no acked op when workerd is killed and restarted ${RESTARTS} times under load`, async () => {
  // Built once, outside the persisted directory: every restart runs the same Worker.
  const bundle = await buildEdgeWorker(join(dir, 'bundle', 'worker.js'));
  const start = (port: number) =>
    startEdgeRelay({
      port,
      persist: join(dir, 'state'),
      secret,
      bundle,
      limits: { connectionsPerAddressPerMinute: 100_000 },
    });
  edge = await start(0);
  const port = edge.port;
  const relay: RelayUnderTest = {
    url: edge.url,
    httpUrl: edge.httpUrl,
    createSocket: createNodeSocket,
    makeToken: (c) => signToken(secret, c),
    close: async () => undefined,
  };
  const bucket = 'edge-restart';
  const writers = await Promise.all(
    [0, 1, 2].map((i) => openReplica(relay, { sub: `writer${i}`, ackTimeoutMs: 1000 })),
  );
  const reader = await openReplica(relay, { sub: 'reader', ackTimeoutMs: 1000 });
  replicas.push(...writers, reader);
  await reader.openBucket(bucket);

  const { written, acked, deleted, stop } = startAckedWriters(writers, bucket);

  const ackedAtKill: number[] = [];
  for (let k = 0; k < RESTARTS; k++) {
    await sleep(250 + Math.random() * 900);
    ackedAtKill.push(acked.size);
    await edge.close();
    edge = await start(port);
  }
  await sleep(500);
  await stop();
  // Writes were acked between the kills, not only before the first one or after the last.
  const ackedBetween = ackedAtKill.slice(1).filter((n, i) => n > (ackedAtKill[i] as number)).length;
  expect(ackedBetween).toBeGreaterThanOrEqual(Math.floor((RESTARTS - 1) / 2));

  const token = await signToken(secret, { sub: 'auditor', read: ['*'] });
  await convergedWithRelay(relay, bucket, [...writers, reader], token, 30_000);
  const onRelay = new Map((await relayEntries(relay, bucket, token)).map((e) => [e.key, e]));
  // Every op acked at relay level is on the relay; a key deleted later is not live there (its
  // tombstone may be purged: every replica acknowledged it).
  expect(acked.size).toBeGreaterThan(100);
  expect([...deleted].filter((k) => onRelay.has(k) && onRelay.get(k)?.deleted !== true)).toEqual([]);
  expect([...acked].filter((k) => !onRelay.has(k) && !deleted.has(k))).toEqual([]);
  // And since the writers lived on, their outboxes delivered every write, acked or not.
  expect([...written].filter((k) => !onRelay.has(k) && !deleted.has(k))).toEqual([]);
}, 120_000);
