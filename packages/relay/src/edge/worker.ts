import { MittsyncError, systemEnv } from '@mittsync/core';
import type { Hono } from 'hono';
import { API_PREFIX, createRelayApp } from '../app';
import { Relay } from '../relay';
import { BucketObject } from './bucket-object';
import { devRegistry, type EdgeEnv, edgeConfig } from './config';
import { listEdgeBuckets } from './registry';
import { closeQuietly, inboundFrame, switchingProtocols, webSocketPair } from './workers-api';

export { setRelaySchemas } from './schemas';
export type { EdgeEnv };
export { BucketObject };

/**
 * The Worker in front of the bucket objects. It runs the same Hono app as the Node relay in
 * forwarding mode: every request is admitted and its token verified here (no token, no object
 * woken), then a bucket's traffic goes to that bucket's Durable Object (`idFromName(bucket)`),
 * which runs the app again over its own `Relay`.
 *
 * `/v1/sync` itself is a lobby served here, without an object: it answers `hello` with a
 * `welcome` that sets `socketPerBucket`, and the client opens `/v1/sync/<bucket>` for each
 * bucket (a WebSocket can only end in one object).
 */
function buildApp(env: EdgeEnv): Hono {
  const config = edgeConfig(env);
  const lobby = new Relay({
    stores: {
      open: () => {
        throw new MittsyncError('INTERNAL', 'the edge Worker holds no buckets');
      },
      transaction: (fn) => fn(),
    },
    auth: config.auth,
    limits: config.limits,
    env: systemEnv(),
    route: { socketPerBucket: true },
  });
  const forward = (bucket: string, req: Request): Promise<Response> =>
    env.BUCKETS.get(env.BUCKETS.idFromName(bucket)).fetch(req);
  const app = createRelayApp({
    relay: lobby,
    forward,
    upgradeWebSocket: (_c, accept, { protocol }) => {
      const [client, server] = webSocketPair();
      server.accept();
      const handler = accept({
        send: (frame) => server.send(frame),
        close: (code, reason) => closeQuietly(server, code, reason),
        bufferedAmount: 0,
      });
      server.addEventListener('message', (ev) => handler.message(...inboundFrame(ev.data)));
      server.addEventListener('close', (ev) => {
        handler.close();
        closeQuietly(server, (ev as { code?: number }).code, 'closed');
      });
      server.addEventListener('error', () => handler.close());
      return switchingProtocols(client, protocol);
    },
    clientAddress: (c) => c.req.header('cf-connecting-ip'),
    compression: 'runtime',
    listBuckets: (req, after, limit) => listEdgeBuckets(env.BUCKETS, req, after, limit),
    ...(config.corsOrigins === undefined ? {} : { corsOrigins: config.corsOrigins }),
    ...(config.dev === undefined
      ? {}
      : {
          dev: {
            secret: config.dev.secret,
            registry: devRegistry,
            // Local only (`npm run start:edge` on a loopback address): the Worker's own origin.
            isOwnHost: (host: string) => /^(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$/.test(host),
          },
        }),
  });
  return app;
}

let cached: { env: EdgeEnv; app: Hono } | undefined;

/** Paths the relay answers; anything else is a static file when `ASSETS` is bound. */
function isRelayPath(path: string): boolean {
  return path.startsWith(`${API_PREFIX}/`) || path === '/healthz' || path === '/metrics';
}

export default {
  async fetch(request: Request, env: EdgeEnv): Promise<Response> {
    const path = new URL(request.url).pathname;
    if (!isRelayPath(path) && env.ASSETS !== undefined) return env.ASSETS.fetch(request);
    try {
      if (cached?.env !== env) cached = { env, app: buildApp(env) };
    } catch (e) {
      const err = e instanceof MittsyncError ? e : new MittsyncError('INTERNAL', String(e));
      return Response.json(
        { type: 'error', code: err.code, message: `relay misconfigured: ${err.message}` },
        { status: 500 },
      );
    }
    return cached.app.fetch(request);
  },
};
