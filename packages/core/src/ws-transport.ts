import type { WireFormat } from './codec';
import { type Env, systemEnv } from './env';
import type { MittsyncError } from './errors';
import type { ClientMessage, HelloMsg, ServerMessage } from './protocol';
import { PROTOCOL_VERSION } from './protocol';
import type { Transport, TransportHandlers } from './transport';
import { DEFAULT_LIMITS } from './validate';
import {
  jwtExpiresAt,
  type OutboundFrame,
  outboundFrame,
  REFRESH_AHEAD_MS,
  TokenSource,
  type WebSocketFactory,
  WebSocketLink,
  type WebSocketLinkEvents,
} from './ws-link';

export { bearerSubprotocols, jwtExpiresAt, type WebSocketFactory, type WebSocketLike } from './ws-link';

export interface WebSocketTransportOptions {
  /**
   * Relay sync endpoint, e.g. `ws://localhost:8787/v1/sync`. A relay that serves each bucket
   * on a socket of its own is reached at `<url>/<encodeURIComponent(bucket)>` too.
   */
  url: string;
  /** Creates a socket (default: the global `WebSocket`). */
  createSocket?: WebSocketFactory;
  /**
   * A bearer token, or a function fetching a fresh one before each connection. A function is
   * also called shortly before a JWT expires, and the fresh token is sent on the live sockets
   * (an `auth` frame), so the connection outlives its tokens.
   */
  token?: string | (() => string | Promise<string>);
  /** Same as a function `token` (kept for readability at call sites). */
  getToken?: () => string | Promise<string>;
  /**
   * Where the token travels on the upgrade request: a WebSocket subprotocol
   * (`mittsync.bearer.<jwt>`, the default: it works in browsers, workers, workerd and Node, and
   * stays out of URLs and their logs), or the `Authorization` header (runtimes that can send
   * headers, such as Node's `ws`).
   */
  tokenIn?: 'subprotocol' | 'header';
  /** Timers and clock for token refreshes (default: the runtime's). */
  env?: Env;
  /** `msgpack` binary frames (default) or `json` text frames for debugging. */
  format?: WireFormat;
  /** Called for inbound frames that fail to decode or validate (the connection is then closed). */
  onProtocolError?: (err: MittsyncError) => void;
}

/** What every socket of a transport is opened with. */
interface SocketConfig {
  url: string;
  format: WireFormat;
  env: Env;
  tokenIn: 'subprotocol' | 'header';
  createSocket: WebSocketFactory | undefined;
  onProtocolError: WebSocketTransportOptions['onProtocolError'];
}

/** `<url>/<bucket>`, the bucket percent-encoded as one path segment (a query string stays last). */
function bucketUrl(url: string, bucket: string): string {
  const q = url.search(/[?#]/);
  const base = q < 0 ? url : url.slice(0, q);
  const rest = q < 0 ? '' : url.slice(q);
  return `${base.replace(/\/+$/, '')}/${encodeURIComponent(bucket)}${rest}`;
}

const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** A bucket's own socket, in bucket mode. */
interface BucketSocket {
  bucket: string;
  /** Undefined while its token is fetched. */
  link: WebSocketLink | undefined;
  /** Its `welcome` came: frames go out as they are sent. */
  welcomed: boolean;
  /** Frames sent before its welcome, in order. */
  held: OutboundFrame[];
  heldBytes: number;
}

/** A ping sent to several bucket sockets, answered once all of them did. */
interface PendingPing {
  waiting: Set<BucketSocket>;
  heads: Record<string, number>;
}

/**
 * One connection as the replica sees it: the root socket, which stays the connection unless
 * its `welcome` says `socketPerBucket`; then one socket per bucket, opened as the replica
 * first sends something about the bucket. Any socket failing ends all of it, once.
 */
class VirtualConnection {
  private root: WebSocketLink | undefined;
  private perBucket = false;
  private hello: HelloMsg | undefined;
  /** Bytes a bucket socket holds for its welcome (see {@link hold}). */
  private maxHeldBytes = 2 * DEFAULT_LIMITS.maxFrameBytes;
  private readonly buckets = new Map<string, BucketSocket>();
  private readonly pings = new Map<number, PendingPing>();
  private refreshTimer: unknown;
  private ended = false;

  constructor(
    private readonly cfg: SocketConfig,
    private readonly tokens: TokenSource,
    private readonly handlers: TransportHandlers,
  ) {}

  async start(): Promise<void> {
    let token: string | undefined;
    try {
      token = await this.tokens.fetch();
    } catch (e) {
      this.end({ reason: `could not get a token: ${errorText(e)}` });
      return;
    }
    if (this.ended) return;
    try {
      this.root = this.link(this.cfg.url, token, {
        open: () => {
          this.armRefresh(token);
          this.handlers.open();
        },
        message: (m) => this.fromRoot(m),
        close: (info) => this.end(info),
      });
    } catch (e) {
      this.end({ reason: errorText(e) });
    }
  }

  send(msg: ClientMessage): void {
    if (this.ended) return;
    if (msg.type === 'hello') this.hello = msg;
    if (!this.perBucket) {
      this.root?.send(msg);
      return;
    }
    switch (msg.type) {
      case 'hello': // each bucket socket says it when it opens
      case 'recv': // flow reports are per socket: the links send their own
        return;
      case 'ping':
        this.ping(msg.id);
        return;
      case 'auth':
        this.auth(msg.token);
        return;
      default:
        this.toBucket(msg);
    }
  }

  close(): void {
    this.end({ code: 1000, reason: 'client closed' });
  }

  get bufferedAmount(): number {
    let n = this.root?.bufferedAmount ?? 0;
    for (const s of this.buckets.values()) n += s.link?.bufferedAmount ?? 0;
    return n;
  }

  private link(url: string, token: string | undefined, events: WebSocketLinkEvents): WebSocketLink {
    const { tokenIn, createSocket, format, onProtocolError } = this.cfg;
    return new WebSocketLink({ url, token, tokenIn, createSocket, format, onProtocolError }, events);
  }

  /** Ends the connection: every socket closes, pending pings are dropped, `close` is reported once. */
  private end(info: { code?: number; reason?: string }): void {
    if (this.ended) return;
    this.ended = true;
    this.cfg.env.clearTimeout(this.refreshTimer);
    this.root?.close();
    for (const s of this.buckets.values()) s.link?.close();
    this.buckets.clear();
    this.pings.clear();
    this.handlers.close(info);
  }

  private fromRoot(msg: ServerMessage): void {
    // Token refreshes are this transport's business; the replica never sees their answers.
    if (msg.type === 'authed') return;
    if (msg.type === 'welcome' && msg.socketPerBucket === true && !this.perBucket) {
      this.perBucket = true;
      this.maxHeldBytes = 2 * msg.limits.maxFrameBytes;
      // The replica subscribes its buckets as it reads this: they go to their own sockets.
      this.handlers.message(msg);
      // The relay's lobby keeps nothing: closing it costs nothing and frees a connection.
      this.root?.close(1000, 'socket per bucket');
      this.root = undefined;
      return;
    }
    this.handlers.message(msg);
  }

  private fromBucket(s: BucketSocket, msg: ServerMessage): void {
    switch (msg.type) {
      case 'welcome': {
        if (s.welcomed) return;
        if (msg.v !== PROTOCOL_VERSION) {
          this.end({ reason: `the relay speaks protocol v${msg.v} on the socket of ${s.bucket}` });
          return;
        }
        s.welcomed = true;
        const held = s.held;
        s.held = [];
        s.heldBytes = 0;
        for (const f of held) s.link?.sendFrame(f);
        return;
      }
      case 'authed':
        return;
      case 'pong': {
        const p = this.pings.get(msg.id);
        if (p === undefined || !p.waiting.delete(s)) return;
        for (const [bucket, head] of Object.entries(msg.heads)) p.heads[bucket] = head;
        this.answerPing(msg.id, p);
        return;
      }
      default:
        this.handlers.message(msg);
    }
  }

  private toBucket(msg: Extract<ClientMessage, { bucket: string }>): void {
    const s = this.buckets.get(msg.bucket);
    if (msg.type === 'unsub') {
      if (s === undefined) return;
      if (s.welcomed) s.link?.send(msg);
      this.drop(s);
      return;
    }
    const to = s ?? this.openBucket(msg.bucket);
    if (to.welcomed) to.link?.send(msg);
    else this.hold(to, msg);
  }

  /**
   * Holds a frame for a bucket socket's welcome. The replica sends a bucket only `sub` (and
   * `auth`) before that: pushes, page requests and marker replies all follow the bucket's
   * `subscribed`, which comes on this socket after its welcome. The bound (two frames of the
   * relay's largest) is for other callers: past it a frame is dropped, as one sent on a closed
   * connection is, and the protocol recovers it (pushes and page requests are re-sent on
   * their timeouts).
   */
  private hold(s: BucketSocket, msg: ClientMessage): void {
    const frame = outboundFrame(msg, this.cfg.format);
    if (s.heldBytes + frame.bytes > this.maxHeldBytes) return;
    s.held.push(frame);
    s.heldBytes += frame.bytes;
  }

  private openBucket(bucket: string): BucketSocket {
    const s: BucketSocket = { bucket, link: undefined, welcomed: false, held: [], heldBytes: 0 };
    this.buckets.set(bucket, s);
    void this.openLink(s);
    return s;
  }

  private async openLink(s: BucketSocket): Promise<void> {
    let token: string | undefined;
    try {
      token = await this.tokens.forBucketSocket();
    } catch (e) {
      this.end({ reason: `could not get a token: ${errorText(e)}` });
      return;
    }
    if (this.ended || this.buckets.get(s.bucket) !== s) return;
    try {
      s.link = this.link(bucketUrl(this.cfg.url, s.bucket), token, {
        open: () => {
          if (this.hello !== undefined) s.link?.send(this.hello);
        },
        message: (m) => this.fromBucket(s, m),
        close: (info) => this.end(info),
      });
    } catch (e) {
      this.end({ reason: errorText(e) });
    }
  }

  /** Closes a bucket's socket for good (unsubscribed): not a drop of the connection. */
  private drop(s: BucketSocket): void {
    this.buckets.delete(s.bucket);
    s.link?.close(1000, 'unsubscribed');
    for (const [id, p] of this.pings) if (p.waiting.delete(s)) this.answerPing(id, p);
  }

  /** Pings every welcomed bucket socket; the replica gets one pong once all of them answered. */
  private ping(id: number): void {
    const to = [...this.buckets.values()].filter((s) => s.welcomed && s.link?.isOpen === true);
    const p: PendingPing = { waiting: new Set(to), heads: {} };
    this.pings.set(id, p);
    for (const s of to) s.link?.send({ type: 'ping', id });
    // No socket to ask: answer now, though not from inside the replica's send.
    if (to.length === 0) void Promise.resolve().then(() => this.answerPing(id, p));
  }

  private answerPing(id: number, p: PendingPing): void {
    if (p.waiting.size > 0 || this.ended || this.pings.get(id) !== p) return;
    this.pings.delete(id);
    this.handlers.message({ type: 'pong', id, heads: p.heads });
  }

  /** Sends `auth` on every bucket socket (after its welcome for those still opening). */
  private auth(token: string): void {
    this.tokens.last = token;
    const msg: ClientMessage = { type: 'auth', token };
    for (const s of this.buckets.values()) {
      if (s.welcomed) s.link?.send(msg);
      else this.hold(s, msg);
    }
  }

  /**
   * Arms the refresh of a JWT from a token function: shortly before it expires, a fresh token
   * goes out in an `auth` frame on the live sockets.
   */
  private armRefresh(token: string | undefined): void {
    const { env } = this.cfg;
    env.clearTimeout(this.refreshTimer);
    const exp = token === undefined ? undefined : jwtExpiresAt(token);
    if (!this.tokens.refreshable || exp === undefined) return;
    const left = exp - env.now();
    const delay = Math.max(0, left - Math.min(REFRESH_AHEAD_MS, left / 5));
    this.refreshTimer = env.setTimeout(
      () => {
        if (this.ended) return;
        this.tokens.fetch().then(
          (fresh) => {
            if (this.ended || fresh === undefined) return;
            if (this.perBucket) this.auth(fresh);
            else if (this.root?.isOpen) this.root.send({ type: 'auth', token: fresh });
            else return;
            this.armRefresh(fresh);
          },
          // No fresh token: the relay closes the sockets at expiry (4002) and the replica reconnects.
          () => undefined,
        );
      },
      Math.min(delay, 2 ** 31 - 1),
    );
  }
}

/**
 * A {@link Transport} over WebSockets: binary MessagePack frames by default, every inbound
 * frame decoded and validated before the replica sees it (a malformed one closes the
 * connection, and the replica reconnects). Works in browsers, workers, workerd and Node (pass
 * `createSocket` built on the `ws` package there). The token travels in a subprotocol by
 * default, never in the URL.
 *
 * Each connection opens one socket at `url`. A relay that carries every bucket on it (the
 * Node relay) keeps it as the connection. A relay that answers `welcome` with
 * `socketPerBucket` (the edge relay, one Durable Object per bucket) switches the transport to
 * bucket mode: that socket closes, and each bucket gets a socket of its own at
 * `<url>/<encodeURIComponent(bucket)>`, opened when the replica first sends about the bucket,
 * with the same `hello` (its `welcome` stays with the transport). The replica still sees one
 * connection: `ping` is answered with one `pong` merging every bucket socket's, `auth` goes to
 * all of them (their `authed` answers stay with the transport, as on one socket; their errors
 * reach the replica), and any of them dropping ends the whole connection with its close code. The
 * cost is one socket and one more handshake (a round trip, and a token fetch only when the
 * last token is within a minute of expiry) per bucket.
 *
 * Wherever a `welcome` sets `recvEvery`, that socket reports the bytes it received with
 * `recv` frames, so the relay can find a slow reader without `bufferedAmount`.
 *
 * @example
 * ```ts
 * const transport = new WebSocketTransport({ url: 'ws://localhost:8787/v1/sync', token: () => fetchToken() });
 * const replica = await Replica.open({ storage, transport });
 * ```
 */
export class WebSocketTransport implements Transport {
  private current: VirtualConnection | undefined;
  private readonly tokens: TokenSource;
  private readonly cfg: SocketConfig;

  constructor(opts: WebSocketTransportOptions) {
    const env = opts.env ?? systemEnv();
    this.tokens = new TokenSource(opts.getToken ?? opts.token, env);
    this.cfg = {
      url: opts.url,
      format: opts.format ?? 'msgpack',
      env,
      tokenIn: opts.tokenIn ?? 'subprotocol',
      createSocket: opts.createSocket,
      onProtocolError: opts.onProtocolError,
    };
  }

  /** Opens a connection; whether it runs on one socket or one per bucket is the relay's answer. */
  connect(handlers: TransportHandlers): void {
    this.current?.close();
    const c = new VirtualConnection(this.cfg, this.tokens, handlers);
    this.current = c;
    void c.start();
  }

  send(msg: ClientMessage): void {
    this.current?.send(msg);
  }

  /** Closes every socket of the connection and reports the close now. */
  close(): void {
    this.current?.close();
  }

  /**
   * Bytes queued on the connection's sockets, where the runtime reports it (for write
   * back-pressure): the sum over the bucket sockets in bucket mode.
   */
  get bufferedAmount(): number {
    return this.current?.bufferedAmount ?? 0;
  }
}
