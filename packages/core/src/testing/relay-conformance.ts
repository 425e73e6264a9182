import { afterAll, beforeAll, describe } from 'vitest';
import { authTests } from './relay-conformance-auth';
import { keyOrderTests } from './relay-conformance-key-order';
import { policyTests } from './relay-conformance-policy';
import { protocolTests } from './relay-conformance-protocol';
import { replicaTests, restartTests } from './relay-conformance-replica';
import { replicaSetTests } from './relay-conformance-replicas';
import { specTests } from './relay-conformance-spec';
import type { RelaySetup, RelayUnderTest } from './relay-harness';

/**
 * The acceptance suite every relay runtime runs (Node on SQLite, workerd with Durable
 * Objects): protocol round trips, key order (UTF-16 code units), join while writing, resume,
 * reset, dedupe, the state flush, subscription policies, the auth matrix, limits and malformed frames. It speaks only
 * the wire protocol, over the WebSockets the setup's `createSocket` opens and the global
 * `fetch`, so it runs wherever the relay is reachable. `setup` starts one relay for the whole
 * suite; tests use buckets and replicaIds of their own, so they never see each other's data.
 *
 * @example
 * ```ts
 * runRelayConformanceTests(async () => {
 *   const relay = await startNodeRelay({ port: 0, data: dir, auth: { secret } });
 *   return { url: relay.url, httpUrl: relay.httpUrl, createSocket: createNodeSocket,
 *     makeToken: (c) => signToken(secret, c), close: relay.close };
 * });
 * ```
 */
export function runRelayConformanceTests(setup: RelaySetup): void {
  describe('relay conformance', () => {
    const ctx = {} as { relay: RelayUnderTest };
    beforeAll(async () => {
      ctx.relay = await setup();
    });
    afterAll(async () => {
      await ctx.relay?.close();
    });
    protocolTests(ctx);
    keyOrderTests(ctx);
    authTests(ctx);
    replicaTests(ctx);
    policyTests(ctx);
    specTests(ctx);
    replicaSetTests(ctx);
    restartTests(ctx);
  });
}
