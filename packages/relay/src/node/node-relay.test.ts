import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signToken } from '../auth';
import { createNodeSocket, runRelayConformanceTests } from '../testing';
import { type NodeRelay, startNodeRelay } from './server';

const secret = 'conformance-secret-conformance-secret';

runRelayConformanceTests(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mittsync-relay-'));
  const start = (port: number) =>
    startNodeRelay({
      port,
      host: '127.0.0.1',
      data: dir,
      auth: { secret },
      tombstoneRetainOps: 100,
      // The whole suite connects from one address, faster than a person would: more than the
      // default 120 sockets a minute now that it has grown (the limit has tests of its own).
      limits: { connectionsPerAddressPerMinute: 100_000 },
    });
  let relay: NodeRelay = await start(0);
  const port = relay.port;
  return {
    url: relay.url,
    httpUrl: relay.httpUrl,
    createSocket: createNodeSocket,
    tombstoneRetainOps: 100,
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
