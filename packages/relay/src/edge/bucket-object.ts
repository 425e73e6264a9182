import { MittsyncError, utf8Length } from '@mittsync/core';
import type { Hono } from 'hono';
import { API_PREFIX, createRelayApp } from '../app';
import { Relay, type RelayLog } from '../relay';
import type { RelaySocket, SessionSnapshot, SocketHandler } from '../session-host';
import { SqlHostStore } from '../sql-host-store';
import { ensureSchema } from '../sql-schema';
import { AlarmTimers } from './alarm-env';
import { type EdgeEnv, edgeConfig } from './config';
import { REGISTRY_PATH, registerBucket, serveRegistry } from './registry';
import { relaySchemas } from './schemas';
import { DurableSqlDriver } from './sql-driver';
import {
  closeQuietly,
  type DurableObjectStateLike,
  inboundFrame,
  switchingProtocols,
  type WorkerWebSocket,
  webSocketPair,
} from './workers-api';

/** The page cache of a bucket object (see `RelayOptions.pageCacheBytes`). */
const EDGE_PAGE_CACHE_BYTES = 32 * 1024 * 1024;
/** What a socket's attachment holds: the session and the flow counters (under 2 KB, plus up to 8 KB of spec and key prefixes). */
interface Attachment {
  s: SessionSnapshot;
  /** Bytes sent on the socket so far. */
  sent: number;
  /** Bytes the client reported received (`recv`). */
  acked: number;
}

function isAttachment(x: unknown): x is Attachment {
  const a = x as Partial<Attachment> | null;
  return (
    typeof a === 'object' &&
    a !== null &&
    typeof a.sent === 'number' &&
    typeof a.acked === 'number' &&
    typeof a.s === 'object' &&
    a.s !== null &&
    a.s.v === 1
  );
}

/**
 * A hibernatable socket as the relay sees it. workerd has no `bufferedAmount`: the backlog is
 * the bytes sent minus the bytes the client reported received, which the client sends every
 * `recvEvery` bytes (`welcome.recvEvery`). The session and both counters are kept in the
 * socket's attachment, written once per event, so a session survives hibernation.
 */
class EdgeSocket implements RelaySocket {
  private snap: SessionSnapshot | undefined;
  private sent: number;
  private acked: number;
  private dirty = false;

  constructor(
    readonly ws: WorkerWebSocket,
    kept?: Attachment,
  ) {
    this.snap = kept?.s;
    this.sent = kept?.sent ?? 0;
    this.acked = kept?.acked ?? 0;
  }

  send(frame: Uint8Array | string): void {
    this.ws.send(frame);
    this.sent += typeof frame === 'string' ? utf8Length(frame) : frame.byteLength;
    this.keep();
  }

  close(code: number, reason: string): void {
    closeQuietly(this.ws, code, reason);
  }

  get bufferedAmount(): number {
    return this.sent - this.acked;
  }

  received(bytes: number): void {
    // A client never received more than was sent; a report past it is ignored, not trusted.
    if (bytes > this.sent || bytes <= this.acked) return;
    this.acked = bytes;
    this.keep();
  }

  remember(snapshot: SessionSnapshot): void {
    this.snap = snapshot;
    this.keep();
  }

  /** Writes the attachment once, after the current event's work. */
  private keep(): void {
    if (this.dirty || this.snap === undefined) return;
    this.dirty = true;
    queueMicrotask(() => {
      this.dirty = false;
      const s = this.snap;
      if (s === undefined) return;
      try {
        this.ws.serializeAttachment({ s, sent: this.sent, acked: this.acked } satisfies Attachment);
      } catch {
        // The socket closed meanwhile.
      }
    });
  }
}

/** The bucket a request is for, from its path (`/v1/sync/<b>`, `/v1/buckets/<b>/...`). */
function bucketOfPath(path: string): string | undefined {
  const m =
    /^\/v1\/admin\/buckets\/([^/]+)(?:\/.*)?$/.exec(path) ??
    /^\/v1\/(?:sync|buckets)\/([^/]+(?:\/[^/]+)*?)(?:\/(?:pages|ops|metrics|info|replicas))?$/.exec(path);
  if (m?.[1] === undefined) return undefined;
  try {
    return decodeURIComponent(m[1]);
  } catch {
    return undefined;
  }
}

/**
 * One bucket's relay on Cloudflare Workers: a SQLite-backed Durable Object running the same
 * `Relay`, `BucketHost`, SQL store and Hono app as the Node relay, with one bucket resident.
 *
 * - Sockets are accepted with the hibernation API; each session is kept in its socket's
 *   attachment and rebuilt when the object wakes (`BucketHost` state comes back from SQL).
 * - Timers are one storage alarm ({@link AlarmTimers}): nothing keeps the object awake.
 * - Pushes commit in their own `transactionSync` once the current event's frames are handled;
 *   the output gate holds acks, deliveries and flush results until the writes are durable.
 */
export class BucketObject {
  private readonly relay: Relay;
  private readonly app: Hono;
  private readonly timers: AlarmTimers;
  private readonly driver: DurableSqlDriver;
  private readonly handlers = new Map<WorkerWebSocket, SocketHandler>();
  private bucketName: string | undefined;
  /** Sessions rebuilt from attachments when this instance started (a wake from hibernation). */
  readonly restored: number;

  private readonly buckets: EdgeEnv['BUCKETS'];

  constructor(
    private readonly ctx: DurableObjectStateLike,
    env: EdgeEnv,
  ) {
    this.buckets = env.BUCKETS;
    const config = edgeConfig(env);
    this.timers = new AlarmTimers(ctx.storage, (e) =>
      console.error('timer failed', e instanceof Error ? e.message : String(e)),
    );
    this.driver = new DurableSqlDriver(ctx.storage);
    ensureSchema(this.driver);
    this.bucketName = this.driver.exec<{ name: string }>(
      'SELECT name FROM buckets ORDER BY id LIMIT 1',
    )[0]?.name;
    const driver = this.driver;
    const log: RelayLog = (level, message, detail) =>
      console[level === 'info' ? 'log' : level](message, detail ?? '');
    const metricsSink = env.METRICS;
    const schemas = relaySchemas();
    this.relay = new Relay({
      stores: { open: (b) => new SqlHostStore(driver, b), transaction: (fn) => driver.transaction(fn) },
      auth: config.auth,
      limits: config.limits,
      env: this.timers,
      maxResidentBuckets: 1,
      // One bucket in an isolate of 128 MB: its page cache takes at most a quarter of that.
      pageCacheBytes: EDGE_PAGE_CACHE_BYTES,
      route: { recvEvery: config.recvEvery },
      ...(config.flushTimeoutMs === undefined ? {} : { flushTimeoutMs: config.flushTimeoutMs }),
      // Every frame of an event is handled before the commit, so frames that arrive together
      // share it; the platform makes the writes durable before any output leaves.
      schedule: (fn) => queueMicrotask(fn),
      ...(schemas === undefined ? {} : { schemas }),
      log,
    });
    if (metricsSink !== undefined) {
      const m = this.relay.metrics;
      const bucket = () => this.bucketName ?? '';
      let opsApplied = 0;
      this.relay.metrics.onCommitObserved = (ms) => {
        metricsSink.writeDataPoint({
          indexes: [bucket()],
          blobs: [bucket()],
          doubles: [ms, m.opsApplied - opsApplied, this.handlers.size],
        });
        opsApplied = m.opsApplied;
      };
    }
    this.app = createRelayApp({
      relay: this.relay,
      upgradeWebSocket: (_c, accept, { protocol }) => {
        const [client, server] = webSocketPair();
        this.ctx.acceptWebSocket(server);
        const socket = new EdgeSocket(server);
        this.handlers.set(server, accept(socket));
        return switchingProtocols(client, protocol);
      },
      clientAddress: (c) => c.req.header('cf-connecting-ip'),
      compression: 'runtime',
      ...(config.corsOrigins === undefined ? {} : { corsOrigins: config.corsOrigins }),
    });
    let restored = 0;
    for (const ws of ctx.getWebSockets()) {
      const kept = ws.deserializeAttachment();
      if (!isAttachment(kept)) {
        // Accepted but closed before its session was kept: nothing to resume; the client reconnects.
        ws.close(1011, 'session lost: reconnect');
        continue;
      }
      this.handlers.set(ws, this.relay.restore(new EdgeSocket(ws, kept), kept.s));
      restored++;
    }
    this.restored = restored;
    this.relay.metrics.restoredSessions += restored;
  }

  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname.startsWith(REGISTRY_PATH)) return serveRegistry(this.driver, request);
    const bucket = bucketOfPath(url.pathname);
    if (bucket !== undefined && url.pathname.startsWith(`${API_PREFIX}/`)) {
      if (this.bucketName === undefined) {
        this.bucketName = bucket;
        // Workers cannot list objects: the registry object learns of this one now.
        await registerBucket(this.buckets, bucket).catch((e: unknown) =>
          console.error('bucket registry', e instanceof Error ? e.message : String(e)),
        );
      } else if (bucket !== this.bucketName) {
        // The Worker routes by idFromName(bucket): another bucket here is a routing bug.
        const err = new MittsyncError('INTERNAL', `object of bucket ${this.bucketName} asked for ${bucket}`);
        return Response.json({ type: 'error', code: err.code, message: err.message }, { status: 500 });
      }
    }
    if (url.pathname.endsWith('/metrics') && !url.pathname.startsWith(`${API_PREFIX}/admin/`)) {
      return new Response(this.relay.metrics.render(), {
        headers: { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' },
      });
    }
    return this.app.fetch(request);
  }

  webSocketMessage(ws: WorkerWebSocket, data: string | ArrayBuffer): void {
    const h = this.handlers.get(ws);
    if (h === undefined) {
      ws.close(1011, 'session lost: reconnect');
      return;
    }
    h.message(...inboundFrame(data));
  }

  webSocketClose(ws: WorkerWebSocket, code: number, reason: string): void {
    this.drop(ws);
    closeQuietly(ws, code, reason);
  }

  webSocketError(ws: WorkerWebSocket): void {
    this.drop(ws);
  }

  alarm(): void {
    this.timers.fire();
  }

  private drop(ws: WorkerWebSocket): void {
    const h = this.handlers.get(ws);
    this.handlers.delete(ws);
    h?.close();
  }
}
