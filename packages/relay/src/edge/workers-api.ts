import type { AlarmStorageLike } from './alarm-env';
import type { DurableStorageLike } from './sql-driver';

// The few Workers runtime APIs the edge relay uses, typed structurally: the package compiles
// with Node's types (one tsconfig for every runtime entry), and these are what workerd gives.

/** A WebSocket in workerd: a hibernatable one carries an attachment of at most 2 KB. */
export interface WorkerWebSocket {
  send(data: string | ArrayBuffer | ArrayBufferView): void;
  close(code?: number, reason?: string): void;
  accept(): void;
  addEventListener(type: 'message', fn: (ev: { data: string | ArrayBuffer }) => void): void;
  addEventListener(type: 'close' | 'error', fn: (ev: unknown) => void): void;
  serializeAttachment(value: unknown): void;
  deserializeAttachment(): unknown;
}

/** `ctx` of a Durable Object. */
export interface DurableObjectStateLike {
  readonly id: { toString(): string; readonly name?: string };
  readonly storage: DurableStorageLike & AlarmStorageLike;
  acceptWebSocket(ws: WorkerWebSocket, tags?: string[]): void;
  getWebSockets(tag?: string): WorkerWebSocket[];
}

/** A Durable Object namespace binding. */
export interface DurableObjectNamespaceLike {
  idFromName(name: string): unknown;
  get(id: unknown): { fetch(req: Request): Promise<Response> };
}

/** A service binding such as `ASSETS`. */
export interface FetcherLike {
  fetch(req: Request): Promise<Response>;
}

/** A Workers Analytics Engine dataset binding. */
export interface AnalyticsEngineLike {
  writeDataPoint(point: { blobs?: string[]; doubles?: number[]; indexes?: string[] }): void;
}

/** Opens a WebSocket pair (workerd's global `WebSocketPair`): [client end, server end]. */
export function webSocketPair(): [WorkerWebSocket, WorkerWebSocket] {
  const Pair = (globalThis as unknown as { WebSocketPair?: new () => Record<0 | 1, WorkerWebSocket> })
    .WebSocketPair;
  if (Pair === undefined) throw new Error('WebSocketPair is only available on Workers');
  const p = new Pair();
  return [p[0], p[1]];
}

/** The 101 answer handing `client` to the caller (workerd's `Response` takes a `webSocket`). */
export function switchingProtocols(client: WorkerWebSocket, protocol: string | undefined): Response {
  const headers = new Headers();
  // Set by hand: workerd does not pick a subprotocol for us, and a browser fails a handshake
  // that selects none of the ones it offered.
  if (protocol !== undefined) headers.set('sec-websocket-protocol', protocol);
  return new Response(null, { status: 101, webSocket: client, headers } as ResponseInit);
}

const utf8 = new TextEncoder();

/** An inbound workerd frame as a relay `SocketHandler` takes it: bytes, and whether it was text. */
export function inboundFrame(data: string | ArrayBuffer): [bytes: Uint8Array, isText: boolean] {
  return typeof data === 'string' ? [utf8.encode(data), true] : [new Uint8Array(data), false];
}

/**
 * Closes `ws`, ignoring a socket already closed. Answering a close with the code it came with
 * completes the closing handshake (without it, on compatibility dates before automatic close
 * replies, workerd reports the request as hung); 1005 and 1006 cannot be sent and become 1000.
 */
export function closeQuietly(ws: WorkerWebSocket, code: number | undefined, reason: string): void {
  try {
    ws.close(code === undefined || code === 1005 || code === 1006 ? 1000 : code, reason);
  } catch {
    // Already closed.
  }
}
