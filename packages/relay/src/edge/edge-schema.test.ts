import { fileURLToPath } from 'node:url';
import { signToken } from '../auth';
import { type EdgeRelay, startEdgeRelay } from '../node/edge-local';
import { createNodeSocket, runRelaySchemaTests } from '../testing';

// Relay-side validation on workerd: the schemas are bundled into the Worker and registered
// with setRelaySchemas, as an application's Worker entry does; the same suite as the Node relay's.
const secret = 'edge-schema-secret-edge-schema-secret';
const schemaModule = fileURLToPath(new URL('../testing/edge-schemas.ts', import.meta.url));

runRelaySchemaTests(async () => {
  const relay: EdgeRelay = await startEdgeRelay({ secret, schemaModule });
  return {
    url: relay.url,
    httpUrl: relay.httpUrl,
    createSocket: createNodeSocket,
    makeToken: ({ sub, read, write }) =>
      signToken(secret, {
        sub,
        ...(read === undefined ? {} : { read }),
        ...(write === undefined ? {} : { write }),
      }),
    close: () => relay.close(),
  };
});
