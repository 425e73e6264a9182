/**
 * @mittsync/relay: the Mittsync relay, one Hono app for every runtime.
 *
 * This entry is what a runtime entry or an application server uses: the app factory, the
 * `Relay`, SQLite storage over any `SqlDriver`, token verification and signing, limits and the
 * HTTP page fetcher. The Node runtime is `@mittsync/relay/node`; the conformance suite and test
 * clients are `@mittsync/relay/testing`.
 *
 * @example
 * ```ts
 * import { Relay, createAuthenticator, createRelayApp, sqlStores } from '@mittsync/relay';
 * const relay = new Relay({ stores: sqlStores(driver), auth: createAuthenticator({ secret }) });
 * const app = createRelayApp({ relay, upgradeWebSocket });
 * ```
 * On Node, `startNodeRelay` from `@mittsync/relay/node` does all of this.
 *
 * @module @mittsync/relay
 */

export type { AdminRouteContext, BucketDetail } from './admin-routes';
export { ADMIN_PREFIX, bucketDetail } from './admin-routes';
export type { RelayAppOptions, UpgradeWebSocket } from './app';
export { createRelayApp } from './app';
export type { Authenticator, AuthOptions, Principal, RelayTokenClaims, ScopeClaim } from './auth';
export { createAuthenticator, principalFromClaims, signToken } from './auth';
export type { RelayLimits } from './limits';
export { DEFAULT_RELAY_LIMITS } from './limits';
export type { MetricGauges, RelayMetrics } from './metrics';
export type { HttpPageFetcherOptions } from './page-fetcher';
export { createHttpPageFetcher } from './page-fetcher';
export type {
  BucketInfo,
  BucketSummary,
  HostStoreProvider,
  LogLevel,
  RelayLog,
  RelayOptions,
} from './relay';
export { Relay, sqlStores } from './relay';
export type { RelaySocket, SocketHandler } from './session-host';
export { SqlHostStore } from './sql-host-store';
