import { decodeFrame, encodeFrame, PACKED_OPS, type WireFormat } from './codec';
import type { Env } from './env';
import { MittsyncError } from './errors';
import { BEARER_SUBPROTOCOL_PREFIX, type ClientMessage, type ServerMessage, SUBPROTOCOL } from './protocol';
import { utf8Length } from './utf8';
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

/**
 * Refresh this long before a token expires (a fifth of its lifetime when that is shorter);
 * a bucket socket reuses the last token only while it has more than this left.
 */
export const REFRESH_AHEAD_MS = 60_000;

/**
 * The tokens of one transport: fresh ones from the token function (or the fixed token), and
 * the last one used or sent, which new bucket sockets reuse while it is good for a while.
 */
export class TokenSource {
  /** The token the last socket opened with, or the last `auth` carried. */
  last: string | undefined;
  private fetching: Promise<string | undefined> | undefined;

  private readonly fn: (() => string | Promise<string>) | undefined;
  private readonly fixed: string | undefined;

  constructor(
    token: string | (() => string | Promise<string>) | undefined,
    private readonly env: Env,
  ) {
    this.fn = typeof token === 'function' ? token : undefined;
    this.fixed = typeof token === 'function' ? undefined : token;
  }

  /** Whether there is a token function to refresh from. */
  get refreshable(): boolean {
    return this.fn !== undefined;
  }

  /** A fresh token from the function, or the fixed one. */
  async fetch(): Promise<string | undefined> {
    const fn = this.fn;
    const token = fn === undefined ? this.fixed : await fn();
    if (token !== undefined) this.last = token;
    return token;
  }

  /**
   * The token for one more bucket socket: the last one while its JWT expiry is more than a
   * minute away (opening 50 buckets costs one token fetch, not 50), else a fresh one, fetched
   * once for every socket asking meanwhile. A fixed token is always reused.
   */
  forBucketSocket(): string | undefined | Promise<string | undefined> {
    const last = this.last;
    if (this.fn === undefined) return last ?? this.fixed;
    const exp = last === undefined ? undefined : jwtExpiresAt(last);
    if (last !== undefined && exp !== undefined && exp - this.env.now() > REFRESH_AHEAD_MS) return last;
    this.fetching ??= this.fetch().finally(() => {
      this.fetching = undefined;
    });
    return this.fetching;
  }
}

const CONNECTING = 0;
const OPEN = 1;

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

/** A client message as it goes on the wire: bytes for msgpack, text for JSON. */
export interface OutboundFrame {
  data: Uint8Array | string;
  /** Its size on the wire. */
  bytes: number;
}

/**
 * Encodes `msg` for the wire in `format` (JSON goes as a text frame, so the relay answers in
 * JSON too). `packOps`: the relay's welcome said it reads packed pushes.
 */
export function outboundFrame(msg: ClientMessage, format: WireFormat, packOps = false): OutboundFrame {
  const frame = encodeFrame(msg, format, { packOps });
  return { data: format === 'json' ? new TextDecoder().decode(frame) : frame, bytes: frame.byteLength };
}

/** What a {@link WebSocketLink} opens with. */
export interface WebSocketLinkOptions {
  url: string;
  /** Bearer token for the upgrade, if any. */
  token: string | undefined;
  tokenIn: 'subprotocol' | 'header';
  createSocket: WebSocketFactory | undefined;
  format: WireFormat;
  onProtocolError: ((err: MittsyncError) => void) | undefined;
}

/** What a {@link WebSocketLink} reports. Nothing is reported after the link's own `close()`. */
export interface WebSocketLinkEvents {
  open(): void;
  /** An inbound frame, decoded and validated. */
  message(msg: ServerMessage): void;
  /** The socket closed or failed to open (not by `close()`): `code` is its close code. */
  close(info: { code?: number; reason?: string }): void;
}

/**
 * One WebSocket to the relay: opened with the token in a subprotocol or header, inbound frames
 * decoded and validated (a malformed one closes the socket with 4000, reported when its close
 * comes), and the flow reports a relay asks for in its `welcome` (`recvEvery`): the bytes of
 * every frame received, counted exactly as the relay counts what it sent, so it can tell a
 * slow reader on runtimes without `bufferedAmount`.
 */
/**
 * The flow reports a relay asks for in its `welcome` (`recvEvery`): the bytes of every frame a
 * socket received, welcome included, counted exactly as the relay counts what it sent (bytes
 * of a binary frame, UTF-8 bytes of a text one), so it can tell a reader from a stalled one.
 */
export class RecvCounter {
  private received = 0;
  private reported = 0;
  private every: number | undefined;

  /** Counts one received frame. */
  count(data: Uint8Array | string): void {
    this.received += typeof data === 'string' ? utf8Length(data) : data.byteLength;
  }

  /** Takes the report interval of a `welcome` (none: no reports). */
  welcome(msg: { recvEvery?: number }): void {
    if (msg.recvEvery !== undefined) this.every = msg.recvEvery;
  }

  /** The total to send in a `recv` now, or undefined when no report is due. */
  due(): number | undefined {
    if (this.every === undefined || this.received - this.reported < this.every) return undefined;
    this.reported = this.received;
    return this.received;
  }
}

export class WebSocketLink {
  private readonly ws: WebSocketLike;
  /** Closed by us, or its close reported: nothing more goes out or up. */
  private done = false;
  /** Sent a malformed frame: ignore the rest until its close comes. */
  private failed = false;
  private readonly flow = new RecvCounter();
  /** The relay's welcome said it reads packed pushes (see `op-pack.ts`). */
  private packOps = false;

  /** Throws when the socket cannot be created (no WebSocket, a token no subprotocol can carry). */
  constructor(
    private readonly opts: WebSocketLinkOptions,
    private readonly events: WebSocketLinkEvents,
  ) {
    const { token } = opts;
    const headers: Record<string, string> = {};
    let protocols = [SUBPROTOCOL];
    if (token !== undefined && opts.tokenIn === 'header') headers.authorization = `Bearer ${token}`;
    else if (token !== undefined) protocols = bearerSubprotocols(token);
    const ws = (opts.createSocket ?? defaultFactory)(opts.url, { headers, protocols });
    this.ws = ws;
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => {
      if (!this.done) events.open();
    };
    ws.onerror = () => undefined; // a close always follows and reports it
    ws.onclose = (ev) => {
      if (this.done) return;
      this.done = true;
      events.close({ code: ev.code, reason: String(ev.reason ?? '') });
    };
    ws.onmessage = (ev) => this.receive(ev.data);
  }

  /** Open and neither closed nor failed: what is sent now goes out. */
  get isOpen(): boolean {
    return !this.done && !this.failed && this.ws.readyState === OPEN;
  }

  /** Sends when open; drops the message otherwise (the protocol recovers). */
  send(msg: ClientMessage): void {
    if (!this.isOpen) return;
    // Packed ops are this link's business: the hello offers to read them on a binary socket.
    const out =
      msg.type === 'hello' && this.opts.format === 'msgpack' ? { ...msg, packOps: PACKED_OPS } : msg;
    this.ws.send(outboundFrame(out, this.opts.format, this.packOps).data);
  }

  /** Sends a frame encoded earlier (by {@link outboundFrame}) when open. */
  sendFrame(frame: OutboundFrame): void {
    if (this.isOpen) this.ws.send(frame.data);
  }

  /** Closes the socket; the link reports nothing more. */
  close(code = 1000, reason = 'client closed'): void {
    if (this.done) return;
    this.done = true;
    const ws = this.ws;
    // `ws` throws on close() before the handshake ends; terminate() drops it quietly.
    const terminate = (ws as unknown as { terminate?: () => void }).terminate;
    if (ws.readyState === CONNECTING && terminate !== undefined) terminate.call(ws);
    else ws.close(code, reason);
  }

  /** Bytes queued on the socket, where the runtime reports it. */
  get bufferedAmount(): number {
    return (this.ws as unknown as { bufferedAmount?: number }).bufferedAmount ?? 0;
  }

  private receive(raw: unknown): void {
    if (this.done || this.failed) return;
    const data = frameBytes(raw);
    if (data !== undefined) this.flow.count(data);
    let msg: ServerMessage;
    try {
      if (data === undefined) throw new MittsyncError('BAD_FRAME', 'unsupported frame type');
      const text = typeof data === 'string';
      msg = validateServerMessage(
        decodeFrame(text ? new TextEncoder().encode(data) : data, text ? 'json' : 'msgpack'),
      );
    } catch (e) {
      this.failed = true;
      this.opts.onProtocolError?.(
        e instanceof MittsyncError ? e : new MittsyncError('BAD_FRAME', String(e), { cause: e }),
      );
      this.ws.close(4000, 'malformed frame from relay');
      return;
    }
    if (msg.type === 'welcome') {
      this.flow.welcome(msg);
      this.packOps = msg.packOps === PACKED_OPS && this.opts.format === 'msgpack';
    }
    this.events.message(msg);
    if (!this.isOpen) return;
    const bytes = this.flow.due();
    if (bytes !== undefined) this.send({ type: 'recv', bytes });
  }
}
