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

export type WebSocketFactory = (url: string) => WebSocketLike;

export interface WebSocketTransportOptions {
  /** Relay sync endpoint, e.g. `ws://localhost:8787/v1/sync`. */
  url: string;
  /** Creates a socket (default: the global `WebSocket`). */
  createSocket?: WebSocketFactory;
  /** A bearer token, or a function fetching a fresh one before each connection. */
  token?: string | (() => string | Promise<string>);
  /** `msgpack` (default) or `json` for debugging. */
  format?: WireFormat;
  /** Called for inbound frames that fail to decode or validate (the frame is dropped). */
  onProtocolError?: (err: MittsyncError) => void;
}

const OPEN = 1;

function defaultFactory(url: string): WebSocketLike {
  const Ctor = (globalThis as unknown as { WebSocket?: new (u: string) => WebSocketLike }).WebSocket;
  if (Ctor === undefined) throw new MittsyncError('CLOSED', 'no global WebSocket here: pass createSocket');
  return new Ctor(url);
}

function toBytes(data: unknown): Uint8Array | string | undefined {
  if (typeof data === 'string') return data;
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return undefined;
}

/**
 * A {@link Transport} over one WebSocket per connection, binary msgpack frames by default.
 * The token travels as a `token` query parameter (browsers cannot set headers on a
 * WebSocket); inbound frames are decoded and validated before the replica sees them.
 */
export class WebSocketTransport implements Transport {
  private socket: WebSocketLike | null = null;
  private readonly format: WireFormat;

  constructor(private readonly opts: WebSocketTransportOptions) {
    this.format = opts.format ?? 'msgpack';
  }

  connect(handlers: TransportHandlers): void {
    let closed = false;
    const fail = (code: number | undefined, reason: string) => {
      if (closed) return;
      closed = true;
      this.socket = null;
      handlers.close(code === undefined ? { reason } : { code, reason });
    };
    void this.resolveUrl().then(
      (url) => {
        let ws: WebSocketLike;
        try {
          ws = (this.opts.createSocket ?? defaultFactory)(url);
        } catch (e) {
          fail(undefined, e instanceof Error ? e.message : String(e));
          return;
        }
        this.socket = ws;
        ws.binaryType = 'arraybuffer';
        ws.onopen = () => handlers.open();
        ws.onclose = (ev) => fail(ev.code, ev.reason);
        ws.onerror = () => undefined; // a close always follows
        ws.onmessage = (ev) => {
          const data = toBytes(ev.data);
          try {
            if (data === undefined) throw new MittsyncError('BAD_FRAME', 'unsupported frame type');
            const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
            const msg = validateServerMessage(
              decodeFrame(bytes, typeof data === 'string' ? 'json' : this.format),
            );
            handlers.message(msg);
          } catch (e) {
            const err =
              e instanceof MittsyncError ? e : new MittsyncError('BAD_FRAME', String(e), { cause: e });
            this.opts.onProtocolError?.(err);
          }
        };
      },
      (e) => fail(undefined, `could not get a token: ${e instanceof Error ? e.message : String(e)}`),
    );
  }

  private async resolveUrl(): Promise<string> {
    const t = this.opts.token;
    const token = typeof t === 'function' ? await t() : t;
    if (token === undefined) return this.opts.url;
    const sep = this.opts.url.includes('?') ? '&' : '?';
    return `${this.opts.url}${sep}token=${encodeURIComponent(token)}`;
  }

  send(msg: ClientMessage): void {
    const ws = this.socket;
    if (ws === null || ws.readyState !== OPEN) return;
    const frame = encodeFrame(msg, this.format);
    ws.send(this.format === 'json' ? new TextDecoder().decode(frame) : frame);
  }

  close(): void {
    this.socket?.close(1000, 'client closed');
  }

  /** Bytes queued on the socket, when the runtime reports it (for write back-pressure). */
  get bufferedAmount(): number {
    return (this.socket as unknown as { bufferedAmount?: number } | null)?.bufferedAmount ?? 0;
  }
}
