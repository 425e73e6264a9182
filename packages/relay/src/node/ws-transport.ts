import {
  type ClientMessage,
  decodeFrame,
  encodeFrame,
  type Transport,
  type TransportHandlers,
  validateServerMessage,
  type WireFormat,
} from '@mittsync/core';
import WebSocket from 'ws';

export interface WebSocketTransportOptions {
  /** The relay's sync endpoint, e.g. `ws://127.0.0.1:8787/v1/sync`. */
  url: string;
  /** A fixed token. */
  token?: string;
  /** Called before every connection attempt (refresh expiring tokens here). */
  getToken?: () => string | Promise<string>;
  /** Where the token travels: the `Authorization` header (default), the URL, or `hello.token`. */
  tokenIn?: 'header' | 'query' | 'hello';
  /** Wire format: MessagePack binary frames (default) or JSON text frames (debugging). */
  format?: WireFormat;
  /** Largest inbound frame accepted (default 64 MiB). */
  maxPayload?: number;
}

/**
 * A {@link Transport} over a `ws` WebSocket, so a Node process (tests, benchmarks, server-side
 * writers) can run a core `Replica` against the relay. Encodes with core's `encodeFrame`, decodes and
 * validates every inbound frame; a malformed frame from the relay closes the connection (the
 * replica reconnects) instead of reaching the replica.
 *
 * @example
 * ```ts
 * const transport = new WebSocketTransport({ url: 'ws://127.0.0.1:8787/v1/sync', token });
 * const replica = await Replica.open({ storage: new MemoryReplicaStorage(), transport });
 * ```
 */
export class WebSocketTransport implements Transport {
  private ws: WebSocket | undefined;
  private generation = 0;
  private endCurrent: ((info: { code?: number; reason?: string }) => void) | undefined;
  private token: string | undefined;

  constructor(private readonly opts: WebSocketTransportOptions) {}

  connect(handlers: TransportHandlers): void {
    const gen = ++this.generation;
    let ended = false;
    const end = (info: { code?: number; reason?: string }) => {
      if (ended) return;
      ended = true;
      if (this.endCurrent === end) this.endCurrent = undefined;
      handlers.close(info);
    };
    this.endCurrent = end;
    void this.open(gen, handlers, end);
  }

  private async open(
    gen: number,
    handlers: TransportHandlers,
    end: (info: { code?: number; reason?: string }) => void,
  ): Promise<void> {
    let token: string | undefined;
    try {
      token = this.opts.getToken ? await this.opts.getToken() : this.opts.token;
    } catch (e) {
      end({ reason: `could not get a token: ${e instanceof Error ? e.message : String(e)}` });
      return;
    }
    if (gen !== this.generation) {
      end({ reason: 'closed' });
      return;
    }
    this.token = token;
    const where = this.opts.tokenIn ?? 'header';
    let url = this.opts.url;
    const headers: Record<string, string> = {};
    if (token !== undefined && where === 'header') headers.authorization = `Bearer ${token}`;
    if (token !== undefined && where === 'query') {
      url += `${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}`;
    }
    const ws = new WebSocket(url, {
      headers,
      perMessageDeflate: false,
      maxPayload: this.opts.maxPayload ?? 64 * 1024 * 1024,
    });
    this.ws = ws;
    ws.on('open', () => {
      if (gen === this.generation) handlers.open();
    });
    ws.on('message', (data, isBinary) => {
      if (gen !== this.generation) return;
      const bytes = Array.isArray(data)
        ? Buffer.concat(data)
        : data instanceof ArrayBuffer
          ? new Uint8Array(data)
          : data;
      let msg: ReturnType<typeof validateServerMessage>;
      try {
        msg = validateServerMessage(decodeFrame(bytes, isBinary ? 'msgpack' : 'json'));
      } catch {
        ws.close(4000, 'malformed frame from relay');
        return;
      }
      handlers.message(msg);
    });
    ws.on('error', () => {
      // A 'close' event always follows and reports it.
    });
    ws.on('close', (code, reason) => {
      if (this.ws === ws) this.ws = undefined;
      end({ code, reason: reason.toString() });
    });
  }

  send(msg: ClientMessage): void {
    const ws = this.ws;
    if (ws === undefined || ws.readyState !== WebSocket.OPEN) return;
    const out =
      msg.type === 'hello' && this.opts.tokenIn === 'hello' && this.token !== undefined
        ? { ...msg, token: this.token }
        : msg;
    // JSON goes as a text frame, so the relay answers in JSON too.
    if (this.opts.format === 'json') ws.send(new TextDecoder().decode(encodeFrame(out, 'json')));
    else ws.send(encodeFrame(out));
  }

  close(): void {
    this.generation++;
    const ws = this.ws;
    this.ws = undefined;
    if (ws !== undefined) {
      if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
      else ws.close(1000, 'client closed');
    }
    // Not yet connected (waiting for a token): report the close now.
    this.endCurrent?.({ code: 1000, reason: 'client closed' });
  }
}
