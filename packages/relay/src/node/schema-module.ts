import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isStandardSchema, isVersionedSchema, MittsyncError, schemaLookup } from '@mittsync/core';
import type { RelayOptions } from '../relay';

/**
 * Loads the schema module of `mittsync relay --schema <file>`: an ES module whose default
 * export (or `schemas` export) maps bucket names or patterns to schemas (`{ 'todo:*':
 * defineSchema(...) }`), or is a function from bucket name to schema. Fails with
 * `BAD_MESSAGE` on anything else, so a bad module stops the relay at startup, not on a push.
 */
export async function loadSchemaModule(file: string): Promise<NonNullable<RelayOptions['schemas']>> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(resolve(file)).href)) as Record<string, unknown>;
  } catch (e) {
    throw new MittsyncError('BAD_MESSAGE', `cannot load schema module ${file}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  const found = mod.default ?? mod.schemas;
  if (typeof found === 'function' && !isStandardSchema(found)) {
    return found as (bucket: string) => never;
  }
  if (typeof found !== 'object' || found === null || isStandardSchema(found) || isVersionedSchema(found)) {
    throw new MittsyncError(
      'BAD_MESSAGE',
      `schema module ${file} must export (default or \`schemas\`) an object of bucket patterns to schemas, or a function`,
    );
  }
  const map = found as Record<string, never>;
  schemaLookup(map); // throws now for an entry that is not a schema
  return map;
}
