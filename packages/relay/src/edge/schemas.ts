import type { RelayOptions } from '../relay';

let registered: RelayOptions['schemas'];

/**
 * Sets the schemas the edge relay's bucket objects check pushes against (see
 * `RelayOptions.schemas`). A Worker has no files to load at run time, so the schemas are
 * bundled: call this at the top level of your Worker entry, before any request, and
 * re-export the relay's Worker from it.
 *
 * @example
 * ```ts
 * // worker.ts, the entry wrangler.jsonc points at
 * import { setRelaySchemas } from '@mittsync/relay/edge';
 * import schemas from './schemas';
 * setRelaySchemas(schemas);
 * export { BucketObject, default } from '@mittsync/relay/edge';
 * ```
 */
export function setRelaySchemas(schemas: RelayOptions['schemas']): void {
  registered = schemas;
}

/** The schemas set with {@link setRelaySchemas} (undefined: none). */
export function relaySchemas(): RelayOptions['schemas'] {
  return registered;
}
