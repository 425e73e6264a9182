/**
 * The Node entry of the relay: better-sqlite3 storage, `ws` sockets, and the WebSocket
 * transport that lets a Node process run a core `Replica` against a relay.
 *
 * @example
 * ```ts
 * import { startNodeRelay, WebSocketTransport } from '@mittsync/relay/node';
 * const relay = await startNodeRelay({ port: 8787, data: './.mittsync', auth: { secret } });
 * ```
 *
 * @module @mittsync/relay/node
 */

export type { EdgeRelay, EdgeRelayOptions } from './edge-local';
export { buildEdgeWorker, startEdgeRelay } from './edge-local';
export type { RelayProcess, RelayProcessOptions } from './process';
export { RELAY_BIN, spawnRelayProcess } from './process';
export type { NodeRelay, NodeRelayOptions } from './server';
export { startNodeRelay } from './server';
export type { SqliteDriverOptions } from './sqlite-driver';
export { SqliteDriver } from './sqlite-driver';
export type { WebSocketTransportOptions } from './ws-transport';
export { WebSocketTransport } from './ws-transport';
