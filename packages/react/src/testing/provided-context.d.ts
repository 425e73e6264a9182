// What the `peer-browser` project's global setup (the relay's testing/vitest-relay-setup.ts,
// named in the root vite.config.ts) provides to the tests, for `inject`.
import 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    /** HTTP URL of the Node relay started for this run, e.g. `http://127.0.0.1:41234`. */
    relayUrl: string;
  }
}
