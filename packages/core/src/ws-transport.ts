import { decodeFrame, encodeFrame, type WireFormat } from './codec';
import { type Env, systemEnv } from './env';
import { MittsyncError } from './errors';
import { BEARER_SUBPROTOCOL_PREFIX, type ClientMessage, SUBPROTOCOL } from './protocol';
import type { Transport, TransportHandlers } from './transport';
import { validateServerMessage } from './validate';

/**
 * The part of the WebSocket API the transport uses: met by the browser's `WebSocket`, by
 * workerd's, and by Node's `ws` package, so one transport serves every runtime.
 */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  /** The subprotocol the server selected ('' or absent for none). */
  readonly protocol?: string;
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  send(data: Uint8Array | string): void;
  close(code?: number, reason?: string): void;
}

/**
 * Opens a socket offering `protocols` (the `Sec-WebSocket-Protocol` list); `headers` is only
 * honoured where the runtime can send them (not browsers).
 */
export type WebSocketFactory = (
  url: string,
  init: { headers: Record<string, string>; protocols: string[] },
) => WebSocketLike;

/** RFC 7230 `tchar`: what a subprotocol name may contain (RFC 6455 section 4.1). */
const SUBPROTOCOL_TOKEN_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * The subprotocols a client offers to authenticate with `token` on the upgrade: `mittsync.v1`,
 * which the relay selects, and `mittsync.bearer.<token>`, which it reads and never echoes.
 * Throws when the token has characters a subprotocol cannot carry (a JWT never has).
 */
export function bearerSubprotocols(token: string): string[] {
  if (!SUBPROTOCOL_TOKEN_RE.test(token)) {
    throw new MittsyncError(
      'UNAUTHENTICATED',
      'the token has characters a WebSocket subprotocol cannot carry: use a JWT, or tokenIn "header" where the runtime sends headers',
    );
  }
  return [SUBPROTOCOL, `${BEARER_SUBPROTOCOL_PREFIX}${token}`];
}

/**
 * When a JWT expires (ms since the epoch), read without verifying it: only used to schedule a
 * refresh. Undefined for anything that is not a JWT with a numeric `exp`.
 */
export function jwtExpiresAt(token: string): number | undefined {
  const payload = token.split('.')[1];
  // Every runtime the transport runs on has atob (browsers, workers, workerd, Node 16+).
  const atob = (globalThis as { atob?: (b64: string) => string }).atob;
  if (payload === undefined || atob === undefined) return undefined;
  try {
    const b64 = payload.replace(/-/g, '+').replace(/_/g, '/');
    const exp = (JSON.parse(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4))) as { exp?: unknown }).exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

export interface WebSocketTransportOptions {
  /** Relay sync endpoint, e.g. `ws://localhost:8787/v1/sync`. */
  url: string;
  /** Creates a socket (default: the global `WebSocket`). */
  createSocket?: WebSocketFactory;
  /**
   * A bearer token, or a function fetching a fresh one before each connection. A function is
   * also called shortly before a JWT expires, and the fresh token is sent on the live socket
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

const OPEN = 1;
const CONNECTING = 0;

/** Refresh this long before a token expires (a fifth of its lifetime when that is shorter). */
const REFRESH_AHEAD_MS = 60_000;

function defaultFactory(url: string, init: { protocols: string[] }): WebSocketLike {
  const Ctor = (globalThis as unknown as { WebSocket?: new (u: string, p: string[]) => WebSocketLike })
    .WebSocket;
  if (Ctor === undefined) throw new MittsyncError('CLOSED', 'no global WebSocket here: pass createSocket');
  return new Ctor(url, init.protocols);
}

function frameBytes(data: unknown): Uint8Array | string | undefined {
  if (typeof data === 'string' || data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (Array.isArray(data) && data.every((d) => d instanceof Uint8Array)) {
    // `ws` may hand over a fragmented message as a list of chunks.
    const out = new Uint8Array(data.reduce((n: number, d: Uint8Array) => n + d.length, 0));
    let at = 0;
    for (const d of data as Uint8Array[]) {
      out.set(d, at);
      at += d.length;
    }
    return out;
  }
  return undefined;
}

type End = (info: { code?: number; reason?: string }) => void;

/**
 * A {@link Transport} over one WebSocket per connection: binary MessagePack frames by default,
 * every inbound frame decoded and validated before the replica sees it (a malformed one closes
 * the connection, and the replica reconnects). Works in browsers, workers, workerd and Node
 * (pass `createSocket` built on the `ws` package there). The token travels in a subprotocol by
 * default, never in the URL.
 *
 * @example
 * ```ts
 * const transport = new WebSocketTransport({ url: 'ws://localhost:8787/v1/sync', token: () => fetchToken() });
 * const replica = await Replica.open({ storage, transport });
 * ```
 */
export class WebSocketTransport implements Transport {
  private socket: WebSocketLike | undefined;
  private generation = 0;
  private endCurrent: End | undefined;
  private refreshTimer: unknown;
  private readonly format: WireFormat;
  private readonly env: Env;

  constructor(private readonly opts: WebSocketTransportOptions) {
    this.format = opts.format ?? 'msgpack';
    this.env = opts.env ?? systemEnv();
  }

  private fetchToken(): string | Promise<string> | undefined {
    const t = this.opts.getToken ?? this.opts.token;
    return typeof t === 'function' ? t() : t;
  }

  /**
   * Arms the refresh of a JWT from a token function: shortly before it expires, a fresh token
   * goes out in an `auth` frame on the live socket of generation `gen`.
   */
  private armRefresh(gen: number, token: string | undefined): void {
    this.env.clearTimeout(this.refreshTimer);
    const t = this.opts.getToken ?? this.opts.token;
    const exp = token === undefined ? undefined : jwtExpiresAt(token);
    if (typeof t !== 'function' || exp === undefined) return;
    const left = exp - this.env.now();
    const delay = Math.max(0, left - Math.min(REFRESH_AHEAD_MS, left / 5));
    this.refreshTimer = this.env.setTimeout(
      () => {
        if (gen !== this.generation) return;
        Promise.resolve(this.fetchToken()).then(
          (fresh) => {
            const ws = this.socket;
            if (gen !== this.generation || fresh === undefined || ws === undefined || ws.readyState !== OPEN)
              return;
            this.write(ws, { type: 'auth', token: fresh });
            this.armRefresh(gen, fresh);
          },
          // No fresh token: the relay closes the socket at expiry (4002) and the replica reconnects.
          () => undefined,
        );
      },
      Math.min(delay, 2 ** 31 - 1),
    );
  }

  connect(handlers: TransportHandlers): void {
    const gen = ++this.generation;
    let ended = false;
    const end: End = (info) => {
      if (ended) return;
      ended = true;
      if (this.endCurrent === end) this.endCurrent = undefined;
      handlers.close(info);
    };
    this.endCurrent = end;
    void this.open(gen, handlers, end);
  }

  private async open(gen: number, handlers: TransportHandlers, end: End): Promise<void> {
    let token: string | undefined;
    try {
      token = await this.fetchToken();
    } catch (e) {
      end({ reason: `could not get a token: ${e instanceof Error ? e.message : String(e)}` });
      return;
    }
    if (gen !== this.generation) {
      end({ reason: 'closed' });
      return;
    }
    const headers: Record<string, string> = {};
    let protocols = [SUBPROTOCOL];
    let ws: WebSocketLike;
    try {
      if (token !== undefined && this.opts.tokenIn === 'header') headers.authorization = `Bearer ${token}`;
      else if (token !== undefined) protocols = bearerSubprotocols(token);
      ws = (this.opts.createSocket ?? defaultFactory)(this.opts.url, { headers, protocols });
    } catch (e) {
      end({ reason: e instanceof Error ? e.message : String(e) });
      return;
    }
    this.socket = ws;
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => {
      if (gen !== this.generation) return;
      this.armRefresh(gen, token);
      handlers.open();
    };
    ws.onerror = () => undefined; // a close always follows and reports it
    ws.onclose = (ev) => {
      if (this.socket === ws) {
        this.socket = undefined;
        this.env.clearTimeout(this.refreshTimer);
      }
      end({ code: ev.code, reason: String(ev.reason ?? '') });
    };
    ws.onmessage = (ev) => {
      if (gen !== this.generation) return;
      const data = frameBytes(ev.data);
      let msg: ReturnType<typeof validateServerMessage>;
      try {
        if (data === undefined) throw new MittsyncError('BAD_FRAME', 'unsupported frame type');
        const text = typeof data === 'string';
        msg = validateServerMessage(
          decodeFrame(text ? new TextEncoder().encode(data) : data, text ? 'json' : 'msgpack'),
        );
      } catch (e) {
        this.opts.onProtocolError?.(
          e instanceof MittsyncError ? e : new MittsyncError('BAD_FRAME', String(e), { cause: e }),
        );
        ws.close(4000, 'malformed frame from relay');
        return;
      }
      // Token refreshes are this transport's business; the replica never sees their answers.
      if (msg.type === 'authed') return;
      handlers.message(msg);
    };
  }

  send(msg: ClientMessage): void {
    const ws = this.socket;
    if (ws === undefined || ws.readyState !== OPEN) return;
    this.write(ws, msg);
  }

  private write(ws: WebSocketLike, msg: ClientMessage): void {
    // JSON goes as a text frame, so the relay answers in JSON too.
    const frame = encodeFrame(msg, this.format);
    ws.send(this.format === 'json' ? new TextDecoder().decode(frame) : frame);
  }

  close(): void {
    this.generation++;
    this.env.clearTimeout(this.refreshTimer);
    const ws = this.socket;
    this.socket = undefined;
    if (ws !== undefined) {
      const terminate = (ws as unknown as { terminate?: () => void }).terminate;
      if (ws.readyState === CONNECTING && terminate !== undefined) terminate.call(ws);
      else ws.close(1000, 'client closed');
    }
    // Not connected yet (still fetching a token): report the close now.
    this.endCurrent?.({ code: 1000, reason: 'client closed' });
  }

  /** Bytes queued on the socket, where the runtime reports it (for write back-pressure). */
  get bufferedAmount(): number {
    return (this.socket as unknown as { bufferedAmount?: number } | undefined)?.bufferedAmount ?? 0;
  }
}
