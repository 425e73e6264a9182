import {
  type WebSocketTransportOptions as CoreOptions,
  WebSocketTransport as CoreWebSocketTransport,
  type WebSocketLike,
} from '@mittsync/core';
import WebSocket from 'ws';

export interface WebSocketTransportOptions extends Omit<CoreOptions, 'createSocket'> {
  /** Largest inbound frame accepted (default 64 MiB). */
  maxPayload?: number;
}

/**
 * The core's `WebSocketTransport` on Node's `ws` package, so a Node process (tests, benchmarks,
 * server-side writers) can run a core `Replica` against the relay. The token goes in the
 * `Authorization` header by default (Node can send headers; browsers use the
 * `mittsync.bearer.<jwt>` subprotocol, which `tokenIn: 'subprotocol'` selects here too).
 *
 * @example
 * ```ts
 * const transport = new WebSocketTransport({ url: 'ws://127.0.0.1:8787/v1/sync', token });
 * const replica = await Replica.open({ storage: new MemoryReplicaStorage(), transport });
 * ```
 */
export class WebSocketTransport extends CoreWebSocketTransport {
  constructor(opts: WebSocketTransportOptions) {
    const { maxPayload, ...rest } = opts;
    super({
      tokenIn: 'header',
      ...rest,
      createSocket: (url, { headers, protocols }) =>
        new WebSocket(url, protocols, {
          headers,
          perMessageDeflate: false,
          maxPayload: maxPayload ?? 64 * 1024 * 1024,
        }) as unknown as WebSocketLike,
    });
  }
}
