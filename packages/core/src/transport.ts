import type { ClientMessage, ServerMessage } from './protocol';

/** Callbacks a {@link Transport} reports one connection's life to. */
export interface TransportHandlers {
  open(): void;
  message(msg: ServerMessage): void;
  /** The connection ended (or failed to open). `code` is the WebSocket close code when known. */
  close(info: { code?: number; reason?: string }): void;
}

/**
 * A message link from a replica to the relay: WebSocket in browsers and Node, an in-memory
 * link in tests and the simulator. `connect` may be called again after `close` reported; each
 * call is a new connection. Messages are objects: the transport owns the codec, and it
 * validates inbound frames (`validateServerMessage`) before handing them over.
 */
export interface Transport {
  connect(handlers: TransportHandlers): void;
  /** Sends on the open connection; silently dropped when not open (the protocol recovers). */
  send(msg: ClientMessage): void;
  /** Closes the current connection; `close` is reported. */
  close(): void;
}
