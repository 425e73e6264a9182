import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signToken } from '../auth';
import { BAD_INPUT_LIMITS, createNodeSocket, rejectionsAt, runBadInputTests } from '../testing';
import { startNodeRelay } from './server';

// The shared bad-input suite (testing/bad-input-cases.ts) against the Node relay; the edge
// relay runs the same cases in edge/edge-bad-input.test.ts. Node-only abuse (half-sent
// requests, HTTP timeouts, unread pages over raw TCP) is in page-abuse.test.ts.
const secret = 'bad-input-secret-bad-input-secret!!';

runBadInputTests('Node relay', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mittsync-bad-'));
  const node = await startNodeRelay({ port: 0, data: dir, auth: { secret }, limits: BAD_INPUT_LIMITS });
  return {
    url: node.url,
    httpUrl: node.httpUrl,
    createSocket: createNodeSocket,
    makeToken: (c) => signToken(secret, c),
    // One process counts every refusal, whatever the bucket.
    rejections: (code) => rejectionsAt(`${node.httpUrl}/metrics`, code),
    close: async () => {
      await node.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
