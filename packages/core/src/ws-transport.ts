import { decodeFrame, encodeFrame, type WireFormat } from './codec';
import { MittsyncError } from './errors';
import type { ClientMessage } from './protocol';
import type { Transport, TransportHandlers } from './transport';
import { validateServerMessage } from './validate';

/**
 * The part of the WebSocket API the transport uses: met by the browser's `WebSocket`, by
 * workerd's, and by Node's `ws` package, so one transport serves every runtime.
 */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  send(data: Uint8Array | string): void;
  close(code?: number, reason?: string): void;
}

/** Opens a socket; `headers` is only honoured where the runtime can send them (not browsers). */
export type WebSocketFactory = (url: string, init: { headers: Record<string, string> }) => WebSocketLike;

export interface WebSocketTransportOptions {
  /** Relay sync endpoint, e.g. `ws://localhost:8787/v1/sync`. */
  url: string;
  /** Creates a socket (default: the global `WebSocket`). */
  createSocket?: WebSocketFactory;
  /** A bearer token, or a function fetching a fresh one before each connection. */
  token?: string | (() => string | Promise<string>);
  /** Same as a function `token` (kept for readability at call sites). */
  getToken?: () => string | Promise<string>;
  /**
   * Where the token travels: the URL (`?token=`, the default: browsers cannot set headers on a
   * WebSocket), the `Authorization` header (runtimes that can), or the `hello` frame.
   */
  tokenIn?: 'query' | 'header' | 'hello';
  /** `msgpack` binary frames (default) or `json` text frames for debugging. */
  format?: WireFormat;
  /** Called for inbound frames that fail to decode or validate (the connection is then closed). */
  onProtocolError?: (err: MittsyncError) => void;
}

const OPEN = 1;
const CONNECTING = 0;

function defaultFactory(url: string): WebSocketLike {
  const Ctor = (globalThis as unknown as { WebSocket?: new (u: string) => WebSocketLike }).WebSocket;
  if (Ctor === undefined) throw new MittsyncError('CLOSED', 'no global WebSocket here: pass createSocket');
  return new Ctor(url);
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
 * (pass `createSocket` built on the `ws` package there).
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
  private token: string | undefined;
  private readonly format: WireFormat;

  constructor(private readonly opts: WebSocketTransportOptions) {
    this.format = opts.format ?? 'msgpack';
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
      const t = this.opts.getToken ?? this.opts.token;
      token = typeof t === 'function' ? await t() : t;
    } catch (e) {
      end({ reason: `could not get a token: ${e instanceof Error ? e.message : String(e)}` });
      return;
    }
    if (gen !== this.generation) {
      end({ reason: 'closed' });
      return;
    }
    this.token = token;
    const where = this.opts.tokenIn ?? 'query';
    let url = this.opts.url;
    const headers: Record<string, string> = {};
    if (token !== undefined && where === 'header') headers.authorization = `Bearer ${token}`;
    if (token !== undefined && where === 'query')
      url += `${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}`;
    let ws: WebSocketLike;
    try {
      ws = (this.opts.createSocket ?? defaultFactory)(url, { headers });
    } catch (e) {
      end({ reason: e instanceof Error ? e.message : String(e) });
      return;
    }
    this.socket = ws;
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => {
      if (gen === this.generation) handlers.open();
    };
    ws.onerror = () => undefined; // a close always follows and reports it
    ws.onclose = (ev) => {
      if (this.socket === ws) this.socket = undefined;
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
      handlers.message(msg);
    };
  }

  send(msg: ClientMessage): void {
    const ws = this.socket;
    if (ws === undefined || ws.readyState !== OPEN) return;
    const out =
      msg.type === 'hello' && this.opts.tokenIn === 'hello' && this.token !== undefined
        ? { ...msg, token: this.token }
        : msg;
    // JSON goes as a text frame, so the relay answers in JSON too.
    const frame = encodeFrame(out, this.format);
    ws.send(this.format === 'json' ? new TextDecoder().decode(frame) : frame);
  }

  close(): void {
    this.generation++;
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
