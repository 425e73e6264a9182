import { type IncomingMessage, type Server, STATUS_CODES } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, relative } from 'node:path';
import type { Duplex } from 'node:stream';
import { createAdaptorServer } from '@hono/node-server';
import { serveStatic } from '@hono/node-server/serve-static';
import { type Env, MittsyncError } from '@mittsync/core';
import type { Context } from 'hono';
import { type WebSocket, WebSocketServer } from 'ws';
import { API_PREFIX, createRelayApp, type UpgradeWebSocket } from '../app';
import { type Authenticator, type AuthOptions, createAuthenticator, eitherAuthenticator } from '../auth';
import type { RelayLimits } from '../limits';
import { Relay, type RelayLog, type RelayOptions, sqlStores } from '../relay';
import { checkDataOutsideStatic, type DevState, isLoopback, loadDevState, loopbackHosts } from './dev-state';
import { SqliteDriver } from './sqlite-driver';

export interface NodeRelayOptions {
  /** TCP port (0 picks a free one). Default 8787. */
  port?: number;
  /** Interface to listen on. Default `127.0.0.1`; use `0.0.0.0` to accept remote clients. */
  host?: string;
  /** Data directory (the database is `<data>/relay.db`), or `:memory:`. Default `./.mittsync`. */
  data?: string;
  /** Token verification. Required unless `dev` is set. */
  auth?: AuthOptions;
  /**
   * Dev mode: a token endpoint handing out read/write `*` tokens to the relay's own pages, signed
   * with dev mode's own random secret (kept in `<data>/dev.json`; `auth` still verifies your
   * real tokens but never signs dev ones). For the demo only; refused on a non-loopback `host`
   * unless `devAllowRemote` is set.
   */
  dev?: boolean;
  /** Origins of dev servers (`http://localhost:5173`) whose pages may fetch dev tokens too. */
  devOrigins?: string[];
  /** Allow dev mode on a non-loopback `host`: anyone who reaches it gets read/write tokens. */
  devAllowRemote?: boolean;
  limits?: Partial<RelayLimits>;
  /** Serve the files of this directory at `/` (a built web app). */
  staticDir?: string;
  /** Origins allowed to call the HTTP API from browsers; dev mode allows `*`. */
  corsOrigins?: string[] | '*';
  /** Accept tokens in the URL (`?token=`), for clients not yet updated; see `RelayAppOptions`. */
  allowQueryToken?: boolean;
  maxResidentBuckets?: number;
  flushTimeoutMs?: number;
  tombstoneRetainOps?: number;
  tombstoneRetainMs?: number;
  /** `synchronous` pragma; FULL unless you accept losing acked ops on power loss. */
  synchronous?: 'FULL' | 'NORMAL';
  /** SQLite page cache in MB (default 64). */
  cacheMb?: number;
  /** Memory for catch-up pages kept for the next joins of large buckets, in MB (default 64; 0: off). */
  pageCacheMb?: number;
  env?: Env;
  log?: RelayLog;
  /** Schemas pushes are checked against, by bucket pattern (see `RelayOptions.schemas`). */
  schemas?: RelayOptions['schemas'];
}

/** A running Node relay. */
export interface NodeRelay {
  relay: Relay;
  server: Server;
  port: number;
  /** `ws://host:port/v1/sync` */
  url: string;
  /** `http://host:port` */
  httpUrl: string;
  /** Dev mode's own signing secret (dev mode only; never the production secret). */
  devSecret?: string;
  /** Graceful shutdown: commit what is queued, close sockets with 1012, close the database. */
  close(): Promise<void>;
}

interface UpgradeEnv {
  incoming: IncomingMessage;
  upgrade?: { req: IncomingMessage; socket: Duplex; head: Buffer; done: boolean };
}

function requestFrom(req: IncomingMessage): Request {
  const headers = new Headers();
  for (const [k, v] of Object.entries(req.headers)) {
    if (typeof v === 'string') headers.set(k, v);
    else if (Array.isArray(v)) for (const x of v) headers.append(k, x);
  }
  return new Request(`http://${req.headers.host ?? 'localhost'}${req.url ?? '/'}`, {
    method: req.method ?? 'GET',
    headers,
  });
}

/**
 * Whether a URL path has a segment starting with a dot, in any encoding (`/.env`, `/%2eenv`,
 * `/a/..%2f.env`, `/a%5c.git`): such files are never served from `--static`.
 */
export function hasDotSegment(path: string): boolean {
  let p = path;
  for (let i = 0; i < 3; i++) {
    if (/(^|[/\\])\./.test(p)) return true;
    let next: string;
    try {
      next = decodeURIComponent(p);
    } catch {
      return /%/.test(p);
    }
    if (next === p) return false;
    p = next;
  }
  return true;
}

/** Writes a plain HTTP response on a socket whose upgrade was refused. */
async function refuse(socket: Duplex, res: Response): Promise<void> {
  const body = Buffer.from(await res.arrayBuffer());
  let head = `HTTP/1.1 ${res.status} ${STATUS_CODES[res.status] ?? ''}\r\n`;
  res.headers.forEach((v, k) => {
    if (k !== 'content-length' && k !== 'connection') head += `${k}: ${v}\r\n`;
  });
  head += `content-length: ${body.length}\r\nconnection: close\r\n\r\n`;
  if (socket.writable) socket.end(Buffer.concat([Buffer.from(head), body]));
  else socket.destroy();
}

/**
 * Starts the relay on Node: better-sqlite3 storage, @hono/node-server for HTTP, `ws` for
 * WebSockets.
 *
 * @example
 * ```ts
 * const relay = await startNodeRelay({ port: 8787, data: './.mittsync', auth: { secret } });
 * // ... later
 * await relay.close();
 * ```
 */
export async function startNodeRelay(opts: NodeRelayOptions = {}): Promise<NodeRelay> {
  const log = opts.log ?? (() => undefined);
  const data = opts.data ?? './.mittsync';
  const listenHost = opts.host ?? '127.0.0.1';
  if (opts.staticDir !== undefined) checkDataOutsideStatic(data, opts.staticDir);
  let auth: Authenticator | undefined = opts.auth === undefined ? undefined : createAuthenticator(opts.auth);
  let dev: DevState | undefined;
  if (opts.dev) {
    if (!isLoopback(listenHost) && opts.devAllowRemote !== true) {
      throw new MittsyncError(
        'BAD_MESSAGE',
        `dev mode hands out read/write tokens: it listens on loopback only, not ${listenHost} (pass --dev-allow-remote if everyone who can reach ${listenHost} may read and write everything)`,
      );
    }
    dev = loadDevState(data);
    const devAuth = createAuthenticator({ secret: dev.secret });
    auth = auth === undefined ? devAuth : eitherAuthenticator(devAuth, auth);
    log(
      'warn',
      isLoopback(listenHost)
        ? 'DEV MODE: pages of this relay can get a read/write token for every bucket from /v1/dev/token. Never use in production.'
        : `DEV MODE ON ${listenHost}: ANYONE WHO REACHES THIS RELAY CAN GET A READ/WRITE TOKEN FOR EVERY BUCKET. Never use in production.`,
    );
  }
  if (opts.allowQueryToken === true) {
    log(
      'warn',
      'tokens are accepted in URLs (?token=), where proxies and servers log them: update the clients',
    );
  }
  if (auth === undefined) {
    throw new MittsyncError('UNAUTHENTICATED', 'no auth configured: pass a secret, a JWKS, or dev mode');
  }
  const driver = new SqliteDriver(data === ':memory:' ? ':memory:' : join(data, 'relay.db'), {
    ...(opts.synchronous === undefined ? {} : { synchronous: opts.synchronous }),
    ...(opts.cacheMb === undefined ? {} : { cacheMb: opts.cacheMb }),
  });
  const relay = new Relay({
    stores: sqlStores(driver),
    auth,
    ...(opts.limits === undefined ? {} : { limits: opts.limits }),
    ...(opts.env === undefined ? {} : { env: opts.env }),
    ...(opts.maxResidentBuckets === undefined ? {} : { maxResidentBuckets: opts.maxResidentBuckets }),
    ...(opts.flushTimeoutMs === undefined ? {} : { flushTimeoutMs: opts.flushTimeoutMs }),
    ...(opts.tombstoneRetainOps === undefined ? {} : { tombstoneRetainOps: opts.tombstoneRetainOps }),
    ...(opts.tombstoneRetainMs === undefined ? {} : { tombstoneRetainMs: opts.tombstoneRetainMs }),
    ...(opts.pageCacheMb === undefined ? {} : { pageCacheBytes: Math.round(opts.pageCacheMb * 1024 * 1024) }),
    ...(opts.schemas === undefined ? {} : { schemas: opts.schemas }),
    log,
  });

  // ws closes frames past maxPayload itself (1009); between maxFrameBytes and that the relay
  // answers FRAME_TOO_LARGE with close code 4009.
  // The app picks the subprotocol to select (ws would otherwise select the first one offered,
  // which may be the one carrying the token).
  const selected = new WeakMap<IncomingMessage, string>();
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: 2 * relay.limits.maxFrameBytes,
    perMessageDeflate: false,
    handleProtocols: (_offered, req) => selected.get(req) ?? false,
  });
  const sockets = new Set<WebSocket>();

  const upgradeWebSocket: UpgradeWebSocket = (c, accept, { protocol }) => {
    const u = (c.env as UpgradeEnv).upgrade;
    if (u === undefined) throw new MittsyncError('BAD_MESSAGE', 'not an upgrade request');
    u.done = true;
    if (protocol !== undefined) selected.set(u.req, protocol);
    wss.handleUpgrade(u.req, u.socket, u.head, (ws) => {
      sockets.add(ws);
      const handler = accept({
        send: (frame) => ws.send(frame),
        close: (code, reason) => ws.close(code, reason),
        get bufferedAmount() {
          return ws.bufferedAmount;
        },
      });
      ws.on('message', (d, isBinary) => {
        const bytes = Array.isArray(d) ? Buffer.concat(d) : d instanceof ArrayBuffer ? new Uint8Array(d) : d;
        handler.message(bytes, !isBinary);
      });
      ws.on('error', (err: Error & { code?: string }) => {
        if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') relay.metrics.reject('FRAME_TOO_LARGE');
      });
      ws.on('close', () => {
        sockets.delete(ws);
        handler.close();
      });
    });
    return new Response(null, { status: 200 });
  };

  // Known once the server listens; no request is answered before that.
  let ownHosts: string[] = [];
  const app = createRelayApp({
    relay,
    upgradeWebSocket,
    clientAddress: (c: Context) => (c.env as UpgradeEnv | undefined)?.incoming?.socket?.remoteAddress,
    ...(dev === undefined
      ? {}
      : {
          dev: {
            secret: dev.secret,
            registry: dev.registry,
            isOwnHost: (h: string) => ownHosts.includes(h),
            ...(opts.devOrigins === undefined ? {} : { origins: opts.devOrigins }),
          },
        }),
    ...(opts.allowQueryToken === true ? { allowQueryToken: true } : {}),
    ...(opts.corsOrigins !== undefined
      ? { corsOrigins: opts.corsOrigins }
      : opts.dev
        ? { corsOrigins: '*' as const }
        : {}),
  });
  if (opts.staticDir !== undefined) {
    const root = relative(process.cwd(), opts.staticDir) || '.';
    // Dotfiles and dot-directories (.env, .git, a data directory) are never part of a web app.
    // Bucket routes are the API's (a bucket may be named `.x`), never files.
    const buckets = `${API_PREFIX}/buckets/`;
    const files = serveStatic({ root });
    app.use('/*', (c, next) => {
      if (c.req.path.startsWith(buckets)) return next();
      if (hasDotSegment(c.req.path))
        return Promise.resolve(c.json({ type: 'error', code: 'BAD_MESSAGE', message: 'not found' }, 404));
      return files(c, next);
    });
    // Client-side routes of a single-page app fall back to its index.
    const index = serveStatic({ path: join(root, 'index.html') });
    app.get('/*', (c, next) => (c.req.path.startsWith(`${API_PREFIX}/`) ? next() : index(c, next)));
  }

  const l = relay.limits;
  const server = createAdaptorServer({
    fetch: app.fetch,
    serverOptions: {
      // Node's defaults hold a half-sent request open for 60 s (headers) and 300 s (body).
      headersTimeout: Math.min(l.httpHeadersTimeoutMs, l.httpRequestTimeoutMs),
      requestTimeout: l.httpRequestTimeoutMs,
      keepAliveTimeout: l.httpKeepAliveTimeoutMs,
      // How often those two are checked (default 30 s, which would stretch a 10 s timeout to 40 s).
      connectionsCheckingInterval: Math.max(100, Math.min(1000, l.httpHeadersTimeoutMs / 4)),
    },
  }) as Server;
  // A socket with no progress either way (a page response its client stopped reading) is
  // destroyed, which cancels the page stream and frees its in-flight slot. `ws` clears this
  // timeout on the sockets it upgrades.
  server.timeout = l.httpIdleTimeoutMs;
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const env: UpgradeEnv = { incoming: req, upgrade: { req, socket, head, done: false } };
    Promise.resolve(app.fetch(requestFrom(req), env))
      .then((res) => (env.upgrade?.done ? undefined : refuse(socket, res)))
      .catch(() => socket.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 8787, listenHost, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const httpUrl = `http://${host}:${addr.port}`;
  ownHosts = loopbackHosts(addr.port);

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      relay.close();
      server.close();
      // Give clients a moment to answer the 1012 close frames, then cut whoever is left.
      const deadline = Date.now() + 1000;
      while (sockets.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      for (const ws of sockets) ws.terminate();
      wss.close();
      server.closeAllConnections();
    })();
    return closing;
  };

  return {
    relay,
    server,
    port: addr.port,
    url: `${httpUrl.replace(/^http/, 'ws')}/v1/sync`,
    httpUrl,
    ...(dev === undefined ? {} : { devSecret: dev.secret }),
    close,
  };
}
