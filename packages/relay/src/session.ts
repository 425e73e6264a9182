import {
  CLOSE_CODES,
  type ClientMessage,
  decodeFrame,
  type ErrorCode,
  type HelloMsg,
  type HostConnection,
  isBucketName,
  PACKED_OPS,
  PROTOCOL_VERSION,
  pageByColumns,
  pageSpec,
  type ReplicationSpec,
  restrictsKeys,
  type ServerMessage,
  scopeSpec,
  specWithinPrefixes,
  toMittsyncError,
  validateClientMessage,
  type WireFormat,
} from '@mittsync/core';
import type { Principal } from './auth';
import { TokenBucket, wireLimits } from './limits';
import type { HostedSession, RelaySocket, SessionHost, SessionSnapshot, SocketHandler } from './session-host';

/** Longest timer the platform can arm (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** One socket's connection to one bucket, as its host sees it. */
class RelayConn implements HostConnection {
  readonly id: string;
  subscribed = false;

  constructor(
    private readonly session: Session,
    readonly bucket: string,
    readonly replicaId: string,
  ) {
    this.id = `${session.id}/${bucket}`;
  }

  /** Read from the session's current token, which a re-auth may replace. */
  get canWrite(): boolean {
    return this.session.canWrite(this.bucket);
  }

  get groups(): readonly string[] {
    return this.session.groups;
  }

  send(msg: ServerMessage): void {
    // The host dropped this subscription (slow consumer, storage reload): the client resumes.
    if (this.subscribed && (msg.type === 'resync' || msg.type === 'reset')) {
      this.subscribed = false;
      this.session.remember();
    }
    this.session.send(msg);
  }

  backlog(): number {
    return this.session.socket.bufferedAmount;
  }
}

function bucketOf(raw: unknown): string | undefined {
  const b = (raw as { bucket?: unknown } | null)?.bucket;
  return isBucketName(b) ? b : undefined;
}

function reqIdOf(raw: unknown): number | undefined {
  const r = (raw as { type?: unknown; reqId?: unknown } | null)?.reqId;
  return typeof r === 'number' && Number.isSafeInteger(r) && r >= 0 ? r : undefined;
}

/** A principal that answers for one bucket only (a restored pinned session's). */
function pinnedPrincipal(snap: SessionSnapshot): Principal {
  return {
    replicaId: snap.replicaId,
    expiresAt: snap.expiresAt,
    canRead: (b) => snap.read && b === snap.bucket,
    canWrite: (b) => snap.write && b === snap.bucket,
    ...(snap.prefixes === undefined ? {} : { keyPrefixes: () => snap.prefixes }),
    ...(snap.groups === undefined ? {} : { groups: snap.groups }),
  };
}

/** What a runtime tells a new session besides its socket. */
export interface SessionOptions {
  /**
   * The one bucket this socket serves (`/v1/sync/<bucket>`); frames for another are refused.
   * Undefined for a socket that may carry many buckets (`/v1/sync`).
   */
  bucket?: string;
}

/**
 * One WebSocket connection, authenticated by its upgrade request: handshake, then routing of every frame to the bucket
 * hosts with authorization, limits and rate limiting on each one. Runtime-agnostic: runtimes
 * feed it frames through {@link SocketHandler}, and it reaches buckets, commits and its socket
 * only through its {@link SessionHost}.
 */
export class Session implements SocketHandler, HostedSession {
  private phase: 'hello' | 'open' | 'closed' = 'hello';
  private format: WireFormat = 'msgpack';
  /** The client reads packed ops (`hello.packOps`, binary sockets only): delivers go packed. */
  private packOps = false;
  private readonly conns = new Map<string, RelayConn>();
  private readonly rate: TokenBucket;
  private timer: unknown;
  /** Counts `auth` frames, so a slow verification never overrides a newer token. */
  private authSeq = 0;

  /** The one bucket this socket serves, if it is pinned to one. */
  readonly bucket: string | undefined;

  constructor(
    private readonly relay: SessionHost,
    readonly socket: RelaySocket,
    readonly id: string,
    private principal: Principal,
    opts: SessionOptions = {},
  ) {
    this.bucket = opts.bucket;
    this.rate = new TokenBucket(relay.limits.opsPerConnectionPerSecond, relay.env.now());
    this.armHelloTimeout();
  }

  /**
   * Rebuilds a pinned session from its snapshot, on a host that was rebuilt from storage: the
   * subscription is registered again without a frame, and timers (hello timeout, token expiry)
   * are armed anew, since a hibernated host lost them.
   */
  static restore(relay: SessionHost, socket: RelaySocket, snap: SessionSnapshot): Session {
    const s = new Session(relay, socket, snap.id, pinnedPrincipal(snap), { bucket: snap.bucket });
    s.format = snap.format;
    s.packOps = snap.packOps === true;
    if (snap.open) {
      s.phase = 'open';
      relay.env.clearTimeout(s.timer);
      s.armExpiry();
    }
    if (snap.subscribed) {
      const conn = s.conn(snap.bucket);
      if (conn !== undefined) {
        relay.host(snap.bucket).resubscribe(conn, snap.policy, snap.spec);
        conn.subscribed = true;
      }
    }
    return s;
  }

  private armHelloTimeout(): void {
    this.timer = this.relay.env.setTimeout(
      () => this.fatal('BAD_MESSAGE', 'no hello received in time', CLOSE_CODES.PROTOCOL),
      this.relay.limits.helloTimeoutMs,
    );
  }

  /** What this session is, for a runtime that keeps it with the socket (pinned sessions only). */
  snapshot(): SessionSnapshot | undefined {
    const b = this.bucket;
    if (b === undefined || this.phase === 'closed') return undefined;
    const p = this.principal;
    const conn = this.conns.get(b);
    const policy = conn === undefined ? 'replica' : (this.relay.peek(b)?.policyOf(conn) ?? 'replica');
    const spec = conn === undefined ? undefined : this.relay.peek(b)?.specOf(conn);
    const prefixes = p.keyPrefixes?.(b);
    return {
      v: 1,
      id: this.id,
      bucket: b,
      open: this.phase === 'open',
      format: this.format,
      ...(this.packOps ? { packOps: true as const } : {}),
      replicaId: p.replicaId,
      expiresAt: p.expiresAt,
      read: p.canRead(b),
      write: p.canWrite(b),
      subscribed: conn?.subscribed === true,
      ...(policy === 'replica' ? {} : { policy }),
      ...(spec === undefined ? {} : { spec }),
      ...(prefixes === undefined ? {} : { prefixes: [...prefixes] }),
      ...(p.groups === undefined || p.groups.length === 0 ? {} : { groups: [...p.groups] }),
    };
  }

  /** @internal Hands the current snapshot to the socket, where the runtime keeps one. */
  remember(): void {
    if (this.socket.remember === undefined) return;
    const snap = this.snapshot();
    if (snap !== undefined) this.socket.remember(snap);
  }

  /** False once the session is closing: nothing more is written to it. */
  get writable(): boolean {
    return this.phase !== 'closed';
  }

  message(data: Uint8Array, isText: boolean): void {
    if (this.phase === 'closed') return;
    const relay = this.relay;
    relay.metrics.framesIn++;
    if (data.byteLength > relay.limits.maxFrameBytes) {
      this.fatal(
        'FRAME_TOO_LARGE',
        `frame of ${data.byteLength} bytes exceeds ${relay.limits.maxFrameBytes}`,
        CLOSE_CODES.FRAME_TOO_LARGE,
      );
      return;
    }
    if (!this.charge(1)) return;
    if (this.phase === 'hello') this.hello(data, isText);
    else this.handle(data, isText);
  }

  /** Takes `n` from the rate allowance; refuses the frame (or closes an abuser) when out. */
  private charge(n: number, bucket?: string): boolean {
    if (this.rate.take(n, this.relay.env.now())) return true;
    if (this.rate.abusive) {
      this.fatal('RATE_LIMITED', 'sustained traffic over the rate limit', CLOSE_CODES.RATE_LIMITED);
    } else {
      this.error(
        'RATE_LIMITED',
        `over ${this.relay.limits.opsPerConnectionPerSecond} ops per second; frame dropped, retry later`,
        bucket,
      );
    }
    return false;
  }

  // -------------------------------------------------------------------------------------------
  // Handshake
  // -------------------------------------------------------------------------------------------

  private hello(data: Uint8Array, isText: boolean): void {
    this.format = isText ? 'json' : 'msgpack';
    let msg: ClientMessage;
    try {
      msg = validateClientMessage(decodeFrame(data, this.format), this.relay.limits);
    } catch (e) {
      const err = toMittsyncError(e, 'BAD_FRAME');
      this.fatal(err.code, `first frame must be a valid hello: ${err.message}`, CLOSE_CODES.PROTOCOL);
      return;
    }
    if (msg.type !== 'hello') {
      this.fatal('BAD_MESSAGE', `first frame must be hello, got ${msg.type}`, CLOSE_CODES.PROTOCOL);
      return;
    }
    if (msg.v !== PROTOCOL_VERSION) {
      this.fatal(
        'PROTOCOL_VERSION',
        `relay speaks protocol ${PROTOCOL_VERSION}, client ${msg.v}: update the client`,
        CLOSE_CODES.PROTOCOL,
      );
      return;
    }
    this.welcome(msg);
  }

  private welcome(hello: HelloMsg): void {
    const p = this.principal;
    const env = this.relay.env;
    if (hello.replicaId !== p.replicaId) {
      // The token is valid: it just does not allow acting as this replica (authorization).
      this.fatal(
        'FORBIDDEN',
        `hello.replicaId ${hello.replicaId} is not the token subject ${p.replicaId}: use a token for this replica`,
        CLOSE_CODES.FORBIDDEN,
      );
      return;
    }
    if (p.expiresAt <= env.now()) {
      this.fatal('TOKEN_EXPIRED', 'token expired: fetch a new one and reconnect', CLOSE_CODES.TOKEN_EXPIRED);
      return;
    }
    this.phase = 'open';
    env.clearTimeout(this.timer);
    this.armExpiry();
    const binary = this.format === 'msgpack';
    this.packOps = binary && hello.packOps === PACKED_OPS;
    const route = this.relay.route;
    this.send({
      type: 'welcome',
      v: PROTOCOL_VERSION,
      relayTime: env.now(),
      limits: wireLimits(this.relay.limits),
      ...(route?.socketPerBucket === true ? { socketPerBucket: true } : {}),
      ...(route?.recvEvery === undefined ? {} : { recvEvery: route.recvEvery }),
      ...(binary ? { packOps: PACKED_OPS } : {}),
    });
    this.remember();
  }

  /**
   * A fresh token on the live socket: same subject, new expiry and scopes. Until it verifies
   * (and if it does not) the socket keeps its current token.
   */
  private reauth(token: string): void {
    const seq = ++this.authSeq;
    this.relay.auth.verify(token).then(
      (p) => {
        if (this.phase !== 'open' || seq !== this.authSeq) return;
        if (p.replicaId !== this.principal.replicaId) {
          this.error(
            'FORBIDDEN',
            `auth token subject ${p.replicaId} is not this connection's ${this.principal.replicaId}`,
          );
          return;
        }
        this.principal = p;
        this.relay.env.clearTimeout(this.timer);
        this.armExpiry();
        // Scopes may have narrowed: nothing keeps flowing from a bucket the new token cannot read.
        for (const c of [...this.conns.values()]) {
          if (p.canRead(c.bucket) && (!c.subscribed || this.specAllowed(c))) continue;
          this.relay.peek(c.bucket)?.unsubscribe(c);
          this.conns.delete(c.bucket);
          this.forbidden(c.bucket, 'read');
        }
        this.remember();
        this.send({ type: 'authed', expiresAt: p.expiresAt });
      },
      (e: unknown) => {
        if (this.phase !== 'open' || seq !== this.authSeq) return;
        const err = toMittsyncError(e, 'UNAUTHENTICATED');
        this.error(err.code, `auth refused, the socket keeps its current token: ${err.message}`);
      },
    );
  }

  /** Whether the current token's key prefixes still hold `c`'s subscription spec. */
  private specAllowed(c: RelayConn): boolean {
    const prefixes = this.principal.keyPrefixes?.(c.bucket);
    if (prefixes === undefined) return true;
    const spec = this.relay.peek(c.bucket)?.specOf(c);
    return restrictsKeys(spec) && specWithinPrefixes(spec, prefixes);
  }

  /** @internal The current token's groups (admin allow/deny lists). */
  get groups(): readonly string[] {
    return this.principal.groups ?? [];
  }

  /** @internal Whether the socket's current token may write `bucket`. */
  canWrite(bucket: string): boolean {
    return this.principal.canWrite(bucket);
  }

  private armExpiry(): void {
    const p = this.principal;
    const env = this.relay.env;
    const left = p.expiresAt - env.now();
    this.timer = env.setTimeout(
      () => {
        if (this.phase !== 'open') return;
        if (p.expiresAt <= env.now()) {
          this.fatal(
            'TOKEN_EXPIRED',
            'token expired: fetch a new one and reconnect',
            CLOSE_CODES.TOKEN_EXPIRED,
          );
        } else this.armExpiry();
      },
      Math.min(Math.max(left, 0) + 1, MAX_TIMER_MS),
    );
  }

  // -------------------------------------------------------------------------------------------
  // Frames
  // -------------------------------------------------------------------------------------------

  private handle(data: Uint8Array, isText: boolean): void {
    const p = this.principal;
    if (p.expiresAt <= this.relay.env.now()) {
      this.fatal('TOKEN_EXPIRED', 'token expired: fetch a new one and reconnect', CLOSE_CODES.TOKEN_EXPIRED);
      return;
    }
    let raw: unknown;
    try {
      raw = decodeFrame(data, isText ? 'json' : 'msgpack');
    } catch (e) {
      const err = toMittsyncError(e, 'BAD_FRAME');
      this.error(err.code, err.message);
      return;
    }
    let msg: ClientMessage;
    try {
      msg = validateClientMessage(raw, this.relay.limits);
    } catch (e) {
      const err = toMittsyncError(e, 'BAD_MESSAGE');
      this.error(err.code, err.message, bucketOf(raw), reqIdOf(raw));
      return;
    }
    switch (msg.type) {
      case 'hello':
        this.error('BAD_MESSAGE', 'hello was already received');
        return;
      case 'auth':
        this.reauth(msg.token);
        return;
      case 'recv':
        this.socket.received?.(msg.bytes);
        return;
      case 'ping': {
        const heads: Record<string, number> = {};
        for (const c of this.conns.values()) {
          const h = this.relay.peek(c.bucket);
          if (h?.isSubscribed(c)) heads[c.bucket] = h.state.head;
        }
        this.send({ type: 'pong', id: msg.id, heads });
        return;
      }
      case 'sub': {
        if (!p.canRead(msg.bucket)) {
          this.forbidden(msg.bucket, 'read');
          return;
        }
        let spec: ReplicationSpec | undefined;
        try {
          spec = scopeSpec(msg.spec, p.keyPrefixes?.(msg.bucket));
        } catch (e) {
          const err = toMittsyncError(e);
          this.error(err.code, err.message, msg.bucket);
          return;
        }
        const conn = this.conn(msg.bucket);
        if (conn === undefined) return;
        const host = this.relay.host(msg.bucket);
        const { spec: _asked, ...rest } = msg;
        host.subscribe(conn, spec === undefined ? rest : { ...rest, spec });
        conn.subscribed = host.isSubscribed(conn);
        this.remember();
        return;
      }
      case 'unsub': {
        const conn = this.conns.get(msg.bucket);
        if (conn === undefined) return;
        this.relay.peek(msg.bucket)?.unsubscribe(conn);
        this.conns.delete(msg.bucket);
        this.remember();
        return;
      }
      case 'push': {
        // Authorized per frame and per bucket: a socket's other scopes never leak into this one.
        if (!p.canWrite(msg.bucket)) {
          this.forbidden(msg.bucket, 'write');
          return;
        }
        if (msg.ops.length > 1 && !this.charge(msg.ops.length - 1, msg.bucket)) return;
        const conn = this.conn(msg.bucket);
        if (conn === undefined) return;
        const prefixes = p.keyPrefixes?.(msg.bucket);
        this.relay.enqueue({
          bucket: msg.bucket,
          replicaId: p.replicaId,
          msg,
          conn,
          ...(prefixes === undefined ? {} : { prefixes }),
        });
        return;
      }
      case 'pageReq': {
        if (!p.canRead(msg.bucket)) {
          this.forbidden(msg.bucket, 'read', msg.reqId);
          return;
        }
        const conn = this.conn(msg.bucket, msg.reqId);
        if (conn === undefined) return;
        // The subscription's spec, or, before one, whatever the token allows; narrowed to the
        // request's own spec when it has one.
        let spec: ReplicationSpec | undefined;
        try {
          const base =
            this.relay.peek(msg.bucket)?.specOf(conn) ?? scopeSpec(undefined, p.keyPrefixes?.(msg.bucket));
          spec = pageSpec(msg.spec, base);
        } catch (e) {
          const err = toMittsyncError(e);
          this.error(err.code, err.message, msg.bucket, msg.reqId);
          return;
        }
        // Columns when asked for over a binary socket: they have no JSON form.
        const binary = this.format === 'msgpack';
        const { cols, ...byEntry } = msg;
        const page = this.relay.page(msg.bucket, binary ? msg : byEntry, undefined, spec);
        this.send(cols === true && binary ? pageByColumns(page) : page);
        return;
      }
      case 'ckpt': {
        if (!p.canRead(msg.bucket)) {
          this.forbidden(msg.bucket, 'read');
          return;
        }
        const conn = this.conn(msg.bucket);
        if (conn === undefined) return;
        this.relay.host(msg.bucket).checkpoint(conn, msg);
        return;
      }
      case 'markerReply': {
        const conn = this.conns.get(msg.bucket);
        const host = this.relay.peek(msg.bucket);
        if (conn === undefined || host === undefined || !host.isSubscribed(conn)) {
          this.error('NOT_SUBSCRIBED', `not subscribed to ${msg.bucket}`, msg.bucket);
          return;
        }
        host.markerReply(conn, msg);
        return;
      }
    }
  }

  /** This socket's connection to `bucket`, within the buckets-per-socket limit. */
  private conn(bucket: string, reqId?: number): RelayConn | undefined {
    let c = this.conns.get(bucket);
    if (c !== undefined) return c;
    if (this.bucket !== undefined && bucket !== this.bucket) {
      this.error(
        'BAD_MESSAGE',
        `this socket serves bucket ${this.bucket} only: open a socket for ${bucket}`,
        bucket,
        reqId,
      );
      return undefined;
    }
    if (this.bucket === undefined && this.relay.route?.socketPerBucket === true) {
      this.error(
        'BAD_MESSAGE',
        `this relay serves each bucket on its own socket: connect to /v1/sync/${encodeURIComponent(bucket)}`,
        bucket,
        reqId,
      );
      return undefined;
    }
    const max = this.relay.limits.maxBucketsPerSocket;
    if (this.conns.size >= max) {
      this.error(
        'TOO_MANY_BUCKETS',
        `a socket may use at most ${max} buckets; unsub one first`,
        bucket,
        reqId,
      );
      return undefined;
    }
    c = new RelayConn(this, bucket, this.principal.replicaId);
    this.conns.set(bucket, c);
    return c;
  }

  private forbidden(bucket: string, what: 'read' | 'write', reqId?: number): void {
    this.error('FORBIDDEN', `token does not allow ${what} access to bucket ${bucket}`, bucket, reqId);
  }

  // -------------------------------------------------------------------------------------------
  // Output and teardown
  // -------------------------------------------------------------------------------------------

  /** Sends a message in this socket's wire format (after the open group commit, if any). */
  send(msg: ServerMessage): void {
    if (this.phase !== 'closed') this.relay.sendTo(this, msg, this.format, this.packOps);
  }

  private error(code: ErrorCode, message: string, bucket?: string, reqId?: number): void {
    this.send({
      type: 'error',
      code,
      message,
      ...(bucket === undefined ? {} : { bucket }),
      ...(reqId === undefined ? {} : { reqId }),
    });
  }

  /** Sends an error frame, then closes the socket with `closeCode`. */
  private fatal(code: ErrorCode, message: string, closeCode: number): void {
    if (this.phase === 'closed') return;
    this.error(code, message);
    this.end(closeCode, message);
  }

  /** @internal The outbound queue is past its hard bound: close without queueing more. */
  slowConsumer(): void {
    if (this.phase === 'closed') return;
    this.relay.metrics.reject('SLOW_CONSUMER');
    this.end(CLOSE_CODES.SLOW_CONSUMER, 'outbound queue over its limit: reconnect and resume');
  }

  /** @internal Storage trouble made the bucket's host reload: resume it. */
  dropBucket(bucket: string, reason: ErrorCode): void {
    const conn = this.conns.get(bucket);
    if (conn === undefined || !conn.subscribed) return;
    conn.subscribed = false;
    this.remember();
    this.send({ type: 'resync', bucket, reason });
  }

  /** @internal Relay shutdown. */
  shutdown(code: number, reason: string): void {
    this.end(code, reason);
  }

  private end(code: number, reason: string): void {
    this.teardown();
    // Close reasons are limited to 123 bytes by the WebSocket protocol.
    this.relay.closeSocket(this, code, reason.slice(0, 120));
  }

  /** The runtime reports the socket closed. */
  close(): void {
    this.teardown();
  }

  private teardown(): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    this.relay.env.clearTimeout(this.timer);
    for (const c of this.conns.values()) this.relay.peek(c.bucket)?.unsubscribe(c);
    this.conns.clear();
    this.relay.forget(this);
  }
}
