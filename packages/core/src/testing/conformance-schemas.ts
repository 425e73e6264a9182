import { defineSchema, type SchemaMap } from '../schema';
import { tinyArray, tinyBoolean, tinyNumber, tinyObject, tinyString } from './tiny-schema';

// No test framework here: the edge relay's tests bundle this module into the Worker.

/**
 * The schemas a relay under `runRelaySchemaTests` must be configured with: buckets
 * `typed-*` hold version 2 todos (version 1 had no `done`), other buckets are untyped.
 */
export const CONFORMANCE_SCHEMAS: SchemaMap = {
  'typed-*': defineSchema({
    version: 2,
    schema: tinyObject({
      title: tinyString,
      done: tinyBoolean,
      tags: tinyArray(tinyObject({ w: tinyNumber })),
    }),
    migrations: { 2: (v: { title: string }) => ({ ...v, done: false, tags: [] }) },
  }),
};
