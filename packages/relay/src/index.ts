/**
 * @mittsync/relay: the Mittsync relay, one Hono app for every runtime.
 *
 * @example
 * ```ts
 * import { Relay, createAuthenticator, createRelayApp, sqlStores } from '@mittsync/relay';
 * const relay = new Relay({ stores: sqlStores(driver), auth: createAuthenticator({ secret }) });
 * const app = createRelayApp({ relay, upgradeWebSocket });
 * ```
 * On Node, `startNodeRelay` from `@mittsync/relay/node` does all of this.
 */

export type { RelayAppOptions, UpgradeWebSocket } from './app';
export { API_PREFIX, createRelayApp, httpStatus } from './app';
export type { Authenticator, AuthOptions, Principal, RelayTokenClaims, ScopeClaim } from './auth';
export {
  bearerToken,
  compileScope,
  createAuthenticator,
  principalFromClaims,
  scopeAllows,
  signToken,
} from './auth';
export type { RelayLimits } from './limits';
export { DEFAULT_RELAY_LIMITS, RELAY_LIMIT_NAMES, resolveLimits, wireLimits } from './limits';
export type { MetricGauges } from './metrics';
export { parseMetrics, RelayMetrics } from './metrics';
export type { HttpPageFetcherOptions } from './page-fetcher';
export { createHttpPageFetcher } from './page-fetcher';
export type { HostStoreProvider, LogLevel, RelayLog, RelayOptions } from './relay';
export { Relay, sqlStores } from './relay';
export type { RelaySocket, SocketHandler } from './session-host';
export { ensureSchema, SCHEMA_VERSION, SqlHostStore } from './sql-host-store';
