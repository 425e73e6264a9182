import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signToken } from '../auth';
import { startEdgeRelay } from '../node/edge-local';
import { BAD_INPUT_LIMITS, createNodeSocket, rejectionsAt, runBadInputTests } from '../testing';

// The bad-input suite the Node relay runs (testing/bad-input-cases.ts), every case of it,
// against the edge relay on workerd: each answered with the same error codes, HTTP statuses
// and close codes, and the relay still serves a good client after each one. The counts are
// read where the edge keeps them: the Worker's /metrics and each bucket object's.
//
// Node's other bad-input tests have no edge counterpart, and are not run here:
// - 1009 from `ws` for frames past its maxPayload (2 x maxFrameBytes), before the relay sees
//   them: workerd hands the relay every frame up to its own cap of 32 MiB, so the relay
//   answers all of them with FRAME_TOO_LARGE and 4009 (the suite's 4009 case, on the lobby and
//   on a bucket object's socket). Past 32 MiB workerd itself closes with 1009 ("Message is too
//   large: 40000000 > 33554432", tried by hand): that is workerd's limit, not the relay's, and
//   pushing 32 MiB through to an object takes 5 to 20 s here.
// - Half-sent requests and slow headers (408 at httpHeadersTimeoutMs), slow bodies
//   (httpRequestTimeoutMs), idle keep-alive connections and unread page responses cut at
//   httpIdleTimeoutMs (node/page-abuse.test.ts): Node's own HTTP server limits. On Workers
//   the platform's front end owns the connection: the relay never sees a request before its
//   headers are whole, nor a TCP socket to time out or cut.
// - Raw TCP clients that ask for pages and never read them while the Node process's memory
//   stays bounded (node/page-abuse.test.ts): what holds unread response bytes on the edge is
//   the platform, not a process of ours whose memory a test could bound.
const secret = 'bad-input-secret-bad-input-secret!!';

runBadInputTests('Edge relay', async () => {
  // Objects on disk in a directory of our own, removed at the end (Miniflare's own temporary
  // directory is removed in the background, often after this process is gone).
  const dir = mkdtempSync(join(tmpdir(), 'mittsync-edge-bad-'));
  const edge = await startEdgeRelay({ port: 0, persist: dir, secret, limits: BAD_INPUT_LIMITS });
  const auditor = await signToken(secret, { sub: 'metrics-reader', read: ['*'] });
  return {
    url: edge.url,
    httpUrl: edge.httpUrl,
    createSocket: createNodeSocket,
    makeToken: (c) => signToken(secret, c),
    // The Worker counts refused requests and upgrades; each bucket's object counts the frames
    // refused on its sockets.
    rejections: async (code, buckets) => {
      let n = await rejectionsAt(`${edge.httpUrl}/metrics`, code);
      for (const b of buckets) {
        n += await rejectionsAt(`${edge.httpUrl}/v1/buckets/${encodeURIComponent(b)}/metrics`, code, auditor);
      }
      return n;
    },
    // workerd's HTTP server closes a keep-alive connection after a request whose body the
    // relay refused unread, without `Connection: close`.
    closesAfterUnreadBody: true,
    close: async () => {
      await edge.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
