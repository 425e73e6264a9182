import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signToken } from '../auth';
import { type EdgeRelay, startEdgeRelay } from '../node/edge-local';
import { createNodeSocket, runRelayConformanceTests } from '../testing';

// The same acceptance suite as the Node relay's, against the edge relay on workerd: the Worker
// and one SQLite-backed Durable Object per bucket, persisted in a directory so the restart
// tests dispose the runtime and start a new one on the same files.
const secret = 'conformance-secret-conformance-secret';

runRelayConformanceTests(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mittsync-edge-'));
  const start = (port: number) => startEdgeRelay({ port, persist: dir, secret });
  let relay: EdgeRelay = await start(0);
  const port = relay.port;
  return {
    url: relay.url,
    httpUrl: relay.httpUrl,
    createSocket: createNodeSocket,
    // Restarting disposes workerd: its sockets drop without a close frame, as in a crash.
    restartCloseCode: 1006,
    makeToken: ({ sub, read, write, ttlS, prefixes, groups, admin }) =>
      signToken(secret, {
        sub,
        ...(read === undefined ? {} : { read }),
        ...(write === undefined ? {} : { write }),
        ...(ttlS === undefined ? {} : { ttlS }),
        ...(prefixes === undefined ? {} : { prefixes }),
        ...(groups === undefined ? {} : { groups }),
        ...(admin === undefined ? {} : { admin }),
      }),
    restart: async () => {
      await relay.close();
      relay = await start(port);
    },
    close: async () => {
      await relay.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
