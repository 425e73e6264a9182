import {
  BEARER_SUBPROTOCOL_PREFIX,
  decodeFrame,
  type ErrorCode,
  type ErrorMsg,
  encodeFrame,
  isBucketName,
  MittsyncError,
  type PageReqMsg,
  type PushMsg,
  replicationRefused,
  type ServerMessage,
  SUBPROTOCOL,
  scopeSpec,
  toMittsyncError,
  validateClientMessage,
  validateSpec,
} from '@mittsync/core';
import { type Context, Hono } from 'hono';
import { compress } from 'hono/compress';
import { cors } from 'hono/cors';
import { installAdminRoutes } from './admin-routes';
import { bearerToken, type Principal } from './auth';
import { DEV_TOKEN_PATH, type DevModeOptions, installDevTokenRoute } from './dev-token';
import { TokenBucket, WindowCounter } from './limits';
import type { BucketSummary, Relay } from './relay';
import type { RelaySocket, SocketHandler } from './session-host';

/**
 * The runtime's WebSocket upgrade: called once the request is authenticated, it upgrades and
 * wires the socket to `accept`'s handler. Node uses `ws`; a Durable Object accepts a
 * hibernatable socket itself. `init.protocol` is the subprotocol to select in the answer
 * (`Sec-WebSocket-Protocol`), or undefined to select none; never any other offered one (the
 * bearer subprotocol carries the token).
 */
export type UpgradeWebSocket = (
  c: Context,
  accept: (socket: RelaySocket) => SocketHandler,
  init: { protocol: string | undefined },
) => Response | Promise<Response>;

export interface RelayAppOptions {
  relay: Relay;
  /** Performs WebSocket upgrades; without it `/v1/sync` answers 426. */
  upgradeWebSocket?: UpgradeWebSocket;
  /** The client's address, for per-address rate limits (runtime-specific). */
  clientAddress?: (c: Context) => string | undefined;
  /**
   * Dev mode: serve `GET /v1/dev/token` issuing read/write `*` tokens to this relay's own pages
   * (see {@link DevModeOptions}). Never enable it unless asked for.
   */
  dev?: DevModeOptions;
  /**
   * Origins allowed to call the HTTP API from a browser (CORS), or `*`. Default none: the API
   * is then same-origin only (WebSockets are not subject to CORS; tokens, not cookies,
   * authenticate them, so cross-site sockets gain nothing).
   */
  corsOrigins?: string[] | '*';
  /**
   * Accept a token in the URL (`?token=`), where it lands in proxy, CDN and server logs. Off
   * by default (such requests get 401 `TOKEN_IN_URL`); only for clients that cannot be updated
   * yet to the `mittsync.bearer.<jwt>` subprotocol or the `Authorization` header.
   */
  allowQueryToken?: boolean;
  /**
   * Forwarding mode (the edge Worker): bucket routes (`/v1/sync/<bucket>`, pages, pushes, and
   * `/v1/buckets/<bucket>/metrics`, which only this mode has) are
   * admitted and authenticated here, then handed to the bucket's own host (its Durable
   * Object), which runs this same app and checks them again. `/v1/sync` stays here.
   */
  forward?: (bucket: string, req: Request) => Promise<Response>;
  /**
   * How page responses are gzipped: by this app (`app`, the default), or by the runtime when a
   * response says `Content-Encoding: gzip` (`runtime`: workerd, where compressing here too
   * would gzip twice).
   */
  compression?: 'app' | 'runtime';
  /**
   * Lists buckets for `GET /v1/admin/buckets` where the relay cannot enumerate its storage
   * (the edge Worker: a registry object, then each bucket's object).
   */
  listBuckets?: (req: Request, after: string | undefined, limit: number) => Promise<BucketSummary[]>;
}

/** Where the versioned routes live. */
export const API_PREFIX = '/v1';

/** The HTTP status an error code is answered with. */
export function httpStatus(code: ErrorCode): number {
  switch (code) {
    case 'UNAUTHENTICATED':
    case 'TOKEN_EXPIRED':
    case 'TOKEN_IN_URL':
      return 401;
    case 'FORBIDDEN':
    case 'ORIGIN_MISMATCH':
    case 'REPLICATION_REFUSED':
      return 403;
    case 'NOT_FOUND':
      return 404;
    case 'FRAME_TOO_LARGE':
      return 413;
    case 'RATE_LIMITED':
      return 429;
    case 'STORAGE_UNAVAILABLE':
    case 'CLOSED':
      return 503;
    case 'INTERNAL':
      return 500;
    default:
      return 400;
  }
}

const MSGPACK = 'application/x-msgpack';
const utf8 = new TextEncoder();
const COUNT_RE = /^\d{1,15}$/;

function wantsJson(c: Context): boolean {
  return /application\/json/i.test(c.req.header('accept') ?? '');
}

function reply(c: Context, msg: ServerMessage, status = 200): Response {
  if (wantsJson(c)) return c.json(msg, status as 200);
  return c.body(encodeFrame(msg) as Uint8Array<ArrayBuffer>, status as 200, { 'content-type': MSGPACK });
}

function count(v: string | undefined, name: string, fallback: number): number {
  if (v === undefined) return fallback;
  if (!COUNT_RE.test(v))
    throw new MittsyncError('BAD_MESSAGE', `query parameter ${name} must be a non-negative integer`);
  return Number(v);
}

/** A query parameter holding JSON (at most 8 KB). */
function parseJsonParam(v: string, name: string): unknown {
  if (v.length > 8192) throw new MittsyncError('BAD_MESSAGE', `query parameter ${name} is too long`);
  try {
    return JSON.parse(v);
  } catch (e) {
    throw new MittsyncError('BAD_MESSAGE', `query parameter ${name} must be JSON`, { cause: e });
  }
}

/** The subprotocols a WebSocket upgrade request offers (`Sec-WebSocket-Protocol`, in order). */
function offeredSubprotocols(header: string | undefined): string[] {
  if (header === undefined) return [];
  return header
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p.length > 0);
}

/** Reads a request body, refusing it as soon as it exceeds `cap` bytes. */
async function readCapped(req: Request, cap: number): Promise<Uint8Array> {
  const declared = Number(req.headers.get('content-length') ?? Number.NaN);
  const tooLarge = () => new MittsyncError('FRAME_TOO_LARGE', `request body exceeds ${cap} bytes`);
  if (declared > cap) throw tooLarge();
  if (req.body === null) return new Uint8Array(0);
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > cap) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge();
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const ch of chunks) {
    out.set(ch, at);
    at += ch.byteLength;
  }
  return out;
}

/**
 * Builds the relay's Hono app: one app for every runtime, with thin runtime entries around it.
 *
 * Routes: `GET /v1/sync` (WebSocket), `GET /v1/buckets/:bucket/pages`,
 * `POST /v1/buckets/:bucket/ops`, `GET /v1/buckets/:bucket/info`, `GET /healthz`, `GET /metrics`,
 * and in dev mode
 * `GET /v1/dev/token`.
 *
 * @example
 * ```ts
 * const relay = new Relay({ stores: sqlStores(new SqliteDriver('./data/relay.db')), auth });
 * const app = createRelayApp({ relay, upgradeWebSocket });
 * ```
 */
export function createRelayApp(opts: RelayAppOptions): Hono {
  const { relay } = opts;
  const limits = relay.limits;
  const app = new Hono();
  const upgrades = new WindowCounter(limits.connectionsPerAddressPerMinute);
  const requests = new WindowCounter(limits.httpRequestsPerAddressPerMinute);
  let opBuckets = new Map<string, TokenBucket>();
  let opBucketsMinute = 0;
  const address = (c: Context) => opts.clientAddress?.(c) ?? 'unknown';

  const fail = (c: Context, e: unknown, json = wantsJson(c)): Response => {
    const err = toMittsyncError(e);
    relay.metrics.reject(err.code);
    if (err.code === 'INTERNAL')
      relay.log('error', 'request failed', { path: c.req.path, message: err.message });
    const msg: ErrorMsg = { type: 'error', code: err.code, message: err.message };
    const retryAfter = err.detail?.retryAfterS;
    if (typeof retryAfter === 'number') c.header('retry-after', String(retryAfter));
    return json ? c.json(msg, httpStatus(err.code) as 400) : reply(c, msg, httpStatus(err.code));
  };

  /**
   * The one bearer token of a request: from `Authorization: Bearer`, a `mittsync.bearer.<jwt>`
   * subprotocol (`offered`, upgrades only), or, when allowed, `?token=`.
   */
  const credential = (c: Context, offered: readonly string[] = []): string => {
    const query = c.req.query('token');
    if (query !== undefined && opts.allowQueryToken !== true) {
      throw new MittsyncError(
        'TOKEN_IN_URL',
        'tokens in the URL are refused (they end up in logs): send the mittsync.bearer.<jwt> subprotocol or Authorization: Bearer <jwt>',
      );
    }
    const found = [
      bearerToken(c.req.header('authorization')),
      ...offered
        .filter((p) => p.startsWith(BEARER_SUBPROTOCOL_PREFIX))
        .map((p) => p.slice(BEARER_SUBPROTOCOL_PREFIX.length)),
      query,
    ].filter((t) => t !== undefined);
    if (found.length > 1) throw new MittsyncError('UNAUTHENTICATED', 'more than one token: send exactly one');
    const token = found[0];
    if (token === undefined) {
      throw new MittsyncError(
        'UNAUTHENTICATED',
        'no token: send the mittsync.bearer.<jwt> subprotocol (browsers) or Authorization: Bearer <jwt>',
      );
    }
    return token;
  };

  const principal = (c: Context): Promise<Principal> => relay.auth.verify(credential(c));

  /** The admin control of `bucket` (checked where the bucket is hosted, never when forwarding). */
  const checkReplication = (bucket: string, dir: 'in' | 'out', who: Principal): void => {
    if (!relay.host(bucket).replicas.allows(dir, { subject: who.replicaId, groups: who.groups ?? [] }))
      throw replicationRefused(bucket, dir);
  };

  /** Counts an API request against its address; refuses new work while shutting down. */
  const admit = (c: Context): void => {
    relay.metrics.httpRequests++;
    if (relay.closed) throw new MittsyncError('CLOSED', 'relay is shutting down; retry shortly');
    if (!requests.hit(address(c), relay.env.now())) {
      throw new MittsyncError('RATE_LIMITED', 'too many requests from this address; retry in a minute');
    }
  };

  /** A `/buckets/:bucket/...` request's bucket and token, admitted, the token able to read it. */
  const reader = async (c: Context): Promise<{ who: Principal; bucket: string }> => {
    admit(c);
    const who = await principal(c);
    const bucket = c.req.param('bucket') ?? '';
    if (!isBucketName(bucket)) throw new MittsyncError('BAD_MESSAGE', 'not a bucket name');
    if (!who.canRead(bucket))
      throw new MittsyncError('FORBIDDEN', `token does not allow read access to bucket ${bucket}`);
    return { who, bucket };
  };

  const chargeOps = (c: Context, n: number): void => {
    const now = relay.env.now();
    const minute = Math.floor(now / 60_000);
    if (minute !== opBucketsMinute) {
      opBucketsMinute = minute;
      opBuckets = new Map();
    }
    const addr = address(c);
    let tb = opBuckets.get(addr);
    if (tb === undefined) {
      tb = new TokenBucket(limits.opsPerConnectionPerSecond, now);
      opBuckets.set(addr, tb);
    }
    if (!tb.take(n, now))
      throw new MittsyncError('RATE_LIMITED', 'too many ops from this address; retry later');
  };

  if (opts.corsOrigins !== undefined) {
    const origin = opts.corsOrigins === '*' ? '*' : opts.corsOrigins;
    const api = cors({ origin, allowHeaders: ['authorization', 'content-type'], maxAge: 600 });
    // Never on the dev token route: that one answers the relay's own pages only.
    app.use(`${API_PREFIX}/*`, (c, next) => (c.req.path === DEV_TOKEN_PATH ? next() : api(c, next)));
  }

  app.get('/healthz', (c) =>
    c.json(
      { ok: !relay.closed, connections: relay.connectionCount, residentBuckets: relay.residentCount },
      relay.closed ? 503 : 200,
    ),
  );

  app.get('/metrics', (c) =>
    c.text(relay.metrics.render(), 200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }),
  );

  /**
   * A WebSocket upgrade: to a socket for many buckets (`/v1/sync`), or for the one bucket of
   * `/v1/sync/<bucket>`. In forwarding mode (the edge Worker) a bucket's socket goes to the
   * bucket's own host once its token verified; its per-address limit is counted there.
   */
  const sync = async (c: Context, bucket: string | undefined): Promise<Response> => {
    try {
      if (c.req.header('upgrade')?.toLowerCase() !== 'websocket') {
        throw new MittsyncError('BAD_MESSAGE', 'this endpoint expects a WebSocket upgrade');
      }
      if (bucket !== undefined && !isBucketName(bucket)) {
        throw new MittsyncError('BAD_MESSAGE', 'not a bucket name');
      }
      if (relay.closed) throw new MittsyncError('CLOSED', 'relay is shutting down; retry shortly');
      const addr = address(c);
      const forward = bucket === undefined ? undefined : opts.forward;
      if (forward === undefined && !upgrades.hit(addr, relay.env.now())) {
        throw new MittsyncError('RATE_LIMITED', 'too many connections from this address; retry in a minute');
      }
      // Every socket is authenticated before it exists: no token, no upgrade (and on the edge,
      // no Durable Object woken up).
      const offered = offeredSubprotocols(c.req.header('sec-websocket-protocol'));
      const who = await relay.auth.verify(credential(c, offered));
      if (offered.length > 0 && !offered.includes(SUBPROTOCOL)) {
        // A browser fails a handshake that selects none of the protocols it offered.
        throw new MittsyncError('BAD_MESSAGE', `offer the ${SUBPROTOCOL} subprotocol`);
      }
      if (forward !== undefined && bucket !== undefined) return await forward(bucket, c.req.raw);
      if (opts.upgradeWebSocket === undefined) {
        return c.json(
          { type: 'error', code: 'BAD_MESSAGE', message: 'WebSockets are not available here' },
          426,
        );
      }
      const protocol = offered.includes(SUBPROTOCOL) ? SUBPROTOCOL : undefined;
      return await opts.upgradeWebSocket(
        c,
        (socket) =>
          relay.accept(socket, {
            address: addr,
            principal: who,
            ...(bucket === undefined ? {} : { bucket }),
          }),
        { protocol },
      );
    } catch (e) {
      return fail(c, e);
    }
  };

  app.get(`${API_PREFIX}/sync`, (c) => sync(c, undefined));
  app.get(`${API_PREFIX}/sync/:bucket{.+}`, (c) => sync(c, c.req.param('bucket')));

  const compressible = (t: string) => t.startsWith(MSGPACK) || t.startsWith('application/json');
  app.use(
    `${API_PREFIX}/buckets/:bucket/pages`,
    opts.compression === 'runtime'
      ? async (c, next) => {
          await next();
          // workerd compresses a body whose response says Content-Encoding: gzip (and would
          // compress an already compressed one again).
          if (
            /\bgzip\b/.test(c.req.header('accept-encoding') ?? '') &&
            compressible(c.res.headers.get('content-type') ?? '') &&
            !c.res.headers.has('content-encoding')
          ) {
            c.res.headers.set('content-encoding', 'gzip');
            c.res.headers.delete('content-length');
          }
        }
      : compress({ contentTypeFilter: compressible }),
  );

  app.get(`${API_PREFIX}/buckets/:bucket/pages`, async (c) => {
    // Read before the first await: @hono/node-server only aborts a signal that exists when the
    // client goes away.
    const signal = c.req.raw.signal;
    try {
      admit(c);
      const who = await principal(c);
      const q = c.req.query();
      const raw: Record<string, unknown> = {
        type: 'pageReq',
        bucket: c.req.param('bucket'),
        reqId: count(q.reqId, 'reqId', 0),
        since: count(q.since, 'since', 0),
        limit: Math.min(count(q.limit, 'limit', 1000), limits.maxPageEntries),
      };
      if (q.after !== undefined) raw.after = q.after;
      if (q.until !== undefined) raw.until = q.until;
      const req = validateClientMessage(raw, limits) as PageReqMsg;
      if (q.epoch !== undefined && q.epoch.length > 64)
        throw new MittsyncError('BAD_MESSAGE', 'epoch is too long');
      if (!who.canRead(req.bucket)) {
        throw new MittsyncError('FORBIDDEN', `token does not allow read access to bucket ${req.bucket}`);
      }
      // `spec` (JSON): read the pages of a subscription with a replication spec; a token with
      // key prefixes limits every page to them.
      const spec = scopeSpec(
        q.spec === undefined ? undefined : validateSpec(parseJsonParam(q.spec, 'spec'), limits.maxKeyBytes),
        who.keyPrefixes?.(req.bucket),
      );
      chargeOps(c, 1);
      if (opts.forward !== undefined) return await opts.forward(req.bucket, c.req.raw);
      // Admitted before any storage read: over the caps a request costs a token check, not a page.
      const flight = relay.pageFlights.acquire(who.replicaId);
      // A client gone before its body is read (or before it is built) frees the slot: the
      // runtime may then never read, nor cancel, the body stream.
      signal.addEventListener('abort', () => flight.release(), { once: true });
      try {
        const endTurn = await relay.pageTurn();
        let bytes: Uint8Array;
        const json = wantsJson(c);
        try {
          if (relay.closed) throw new MittsyncError('CLOSED', 'relay is shutting down; retry shortly');
          if (signal.aborted) {
            flight.release();
            return c.body(null, 499 as 200);
          }
          checkReplication(req.bucket, 'out', who);
          // Columns have no JSON form: a JSON answer is by entry, whatever the request asked.
          const { cols, ...byEntry } = req;
          const page = relay.page(req.bucket, json ? byEntry : req, q.epoch, spec);
          bytes = json ? utf8.encode(JSON.stringify(page)) : encodeFrame(page);
        } finally {
          endTurn();
        }
        return c.body(flight.body(bytes), 200, {
          'content-type': json ? 'application/json' : MSGPACK,
          'content-length': String(bytes.byteLength),
        });
      } catch (e) {
        flight.release();
        throw e;
      }
    } catch (e) {
      return fail(c, e);
    }
  });

  app.post(`${API_PREFIX}/buckets/:bucket/ops`, async (c) => {
    try {
      admit(c);
      const who = await principal(c);
      const bucket = c.req.param('bucket');
      if (!who.canWrite(bucket))
        throw new MittsyncError('FORBIDDEN', `token does not allow write access to bucket ${bucket}`);
      if (opts.forward !== undefined) {
        if (!isBucketName(bucket)) throw new MittsyncError('BAD_MESSAGE', 'not a bucket name');
        return await opts.forward(bucket, c.req.raw);
      }
      const body = await readCapped(c.req.raw, limits.maxFrameBytes);
      const json = /application\/json/i.test(c.req.header('content-type') ?? '');
      const decoded = decodeFrame(body, json ? 'json' : 'msgpack');
      if (typeof decoded !== 'object' || decoded === null || Array.isArray(decoded)) {
        throw new MittsyncError('BAD_MESSAGE', 'body must be a push message { ops: [...] }');
      }
      const raw = { type: 'push', bucket, ...(decoded as Record<string, unknown>) };
      if (raw.bucket !== bucket || raw.type !== 'push') {
        throw new MittsyncError('BAD_MESSAGE', 'body type/bucket must match the route (push to this bucket)');
      }
      const msg = validateClientMessage(raw, limits) as PushMsg;
      const foreign = msg.ops.find((op) => op.origin !== who.replicaId);
      if (foreign !== undefined) {
        throw new MittsyncError(
          'ORIGIN_MISMATCH',
          `op origin ${foreign.origin} is not the token subject ${who.replicaId}`,
        );
      }
      chargeOps(c, msg.ops.length);
      checkReplication(bucket, 'in', who);
      const ack = await relay.push(bucket, who.replicaId, msg, undefined, who.keyPrefixes?.(bucket));
      return reply(c, ack);
    } catch (e) {
      return fail(c, e);
    }
  });

  // One bucket's checkpoint and size (`BucketInfo`) for a token that may read it: what
  // `mittsync inspect` prints and where `mittsync import` continues its originSeqs.
  app.get(`${API_PREFIX}/buckets/:bucket/info`, async (c) => {
    try {
      const { who, bucket } = await reader(c);
      if (opts.forward !== undefined) return await opts.forward(bucket, c.req.raw);
      return c.json(relay.info(bucket, who.replicaId), 200, { 'cache-control': 'no-store' });
    } catch (e) {
      return fail(c, e);
    }
  });

  const forward = opts.forward;
  if (forward !== undefined) {
    // One bucket's own metrics (Prometheus text from its host), for a token that may read it.
    app.get(`${API_PREFIX}/buckets/:bucket/metrics`, async (c) => {
      try {
        const { bucket } = await reader(c);
        return await forward(bucket, c.req.raw);
      } catch (e) {
        return fail(c, e);
      }
    });
  }

  installAdminRoutes(app, {
    relay,
    admit,
    principal,
    reader,
    fail: (c, e) => fail(c, e, true),
    ...(opts.forward === undefined ? {} : { forward: opts.forward }),
    ...(opts.listBuckets === undefined ? {} : { listBuckets: opts.listBuckets }),
  });

  if (opts.dev !== undefined)
    installDevTokenRoute(app, opts.dev, relay.env.random, (c, e) => fail(c, e, true));

  app.notFound((c) =>
    c.json({ type: 'error', code: 'BAD_MESSAGE', message: `no route ${c.req.method} ${c.req.path}` }, 404),
  );
  app.onError((e, c) => fail(c, e));
  return app;
}
