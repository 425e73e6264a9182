import { decodeFrame, type ErrorCode, type WebSocketFactory, type WebSocketLike } from '@mittsync/core';
import { type SocketTarget, UpgradeRefused } from '@mittsync/core/testing';
import WebSocket from 'ws';

/**
 * Opens WebSockets from a Node process with the `ws` package, for the conformance suite and
 * other protocol tests (`RelayUnderTest.createSocket`), offering `protocols` as a browser
 * would. Unlike a standard WebSocket it also sends `headers` on the upgrade and reads the answer to a refused one: the socket's first error
 * event then carries an `UpgradeRefused` with the HTTP status and the error code of the body.
 *
 * @example
 * ```ts
 * const { client } = await RawClient.open({ url: relay.url, createSocket: createNodeSocket }, token, 'me');
 * ```
 */
export const createNodeSocket: WebSocketFactory = (url, { headers, protocols }) => {
  const ws = new WebSocket(url, protocols, {
    headers,
    perMessageDeflate: false,
    maxPayload: 256 * 1024 * 1024,
  });
  // An 'error' event nobody listens to would throw; the socket's user may not listen.
  ws.on('error', () => undefined);
  ws.on('unexpected-response', (_req, res) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => {
      let code: ErrorCode | undefined;
      try {
        code = (decodeFrame(Buffer.concat(chunks)) as { code?: ErrorCode }).code;
      } catch {
        code = undefined;
      }
      ws.emit('error', new UpgradeRefused(res.statusCode ?? 0, code));
      // Ends the handshake: a second error event, then the close (1006).
      ws.terminate();
    });
  });
  return ws as unknown as WebSocketLike;
};

/** A `SocketTarget` for a relay's sync URL, opening sockets with {@link createNodeSocket}. */
export function nodeSocketTarget(url: string): SocketTarget {
  return { url, createSocket: createNodeSocket };
}
