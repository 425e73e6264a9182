import { MittsyncError } from './errors';
import type { Op, Value } from './model';
import {
  isStandardSchema,
  type StandardInput,
  type StandardIssue,
  type StandardOutput,
  type StandardResult,
  type StandardSchemaV1,
} from './standard-schema';

/**
 * Typed buckets: one module for what the replica handles, the browser peer and the relay all
 * do with a schema. A bucket's schema is any Standard Schema validator, optionally versioned
 * with migrations ({@link defineSchema}). Values written under version 1 (or with no schema)
 * are stored as they are; a value written under version N > 1 is stored in an envelope
 * `{ "~v": N, "~d": value }`, so a bucket whose schema never changes stores and sends exactly
 * what it did without one. See docs/schemas.md for the rules of changing a schema.
 */

/** Turns a value of version `n - 1` into one of version `n`. Must be pure and synchronous. */
// biome-ignore lint/suspicious/noExplicitAny: a migration's input is whatever the older version stored
export type Migration = (value: any) => unknown;

/** A schema with a version and the migrations that bring older values up to it. */
export interface VersionedSchema<S extends StandardSchemaV1 = StandardSchemaV1> {
  readonly kind: 'mittsync.schema';
  /** The version this code writes (a positive integer; 1 for the first). */
  readonly version: number;
  readonly schema: S;
  /** `migrations[n]` turns a version `n - 1` value into a version `n` one. */
  readonly migrations: Readonly<Record<number, Migration>>;
}

/** What a bucket accepts as its schema: a Standard Schema validator (version 1) or a {@link VersionedSchema}. */
export type SchemaLike = StandardSchemaV1 | VersionedSchema;

/** The type of values read through schema `S`. */
export type SchemaOutput<S> =
  S extends VersionedSchema<infer X>
    ? StandardOutput<X>
    : S extends StandardSchemaV1
      ? StandardOutput<S>
      : never;

/** The type of values written through schema `S`. */
export type SchemaInput<S> =
  S extends VersionedSchema<infer X>
    ? StandardInput<X>
    : S extends StandardSchemaV1
      ? StandardInput<S>
      : never;

/** A value or a promise of it: validation is synchronous for most schemas, so don't force a tick. */
export type MaybePromise<T> = T | Promise<T>;

/** The envelope's field names (reserved: a stored object with exactly these two keys is an envelope). */
export const VERSION_FIELD = '~v';
export const DATA_FIELD = '~d';

/**
 * Declares a schema's version and its migrations.
 *
 * @example
 * ```ts
 * const todo = defineSchema({
 *   version: 2,
 *   schema: z.object({ title: z.string(), done: z.boolean() }),
 *   migrations: { 2: (v1: { title: string }) => ({ ...v1, done: false }) },
 * });
 * const todos = client.bucket('todos', { schema: todo });
 * ```
 */
export function defineSchema<S extends StandardSchemaV1>(def: {
  version: number;
  schema: S;
  migrations?: Record<number, Migration>;
}): VersionedSchema<S> {
  if (!Number.isSafeInteger(def.version) || def.version < 1) {
    throw new MittsyncError('BAD_MESSAGE', `schema version must be a positive integer, got ${def.version}`);
  }
  if (!isStandardSchema(def.schema)) {
    throw new MittsyncError('BAD_MESSAGE', 'schema must implement Standard Schema v1 (`~standard`)');
  }
  const migrations = def.migrations ?? {};
  for (const [k, fn] of Object.entries(migrations)) {
    const n = Number(k);
    if (!Number.isSafeInteger(n) || n < 2 || n > def.version || typeof fn !== 'function') {
      throw new MittsyncError(
        'BAD_MESSAGE',
        `migration ${k} must be a function keyed by the version it produces (2..${def.version})`,
      );
    }
  }
  return { kind: 'mittsync.schema', version: def.version, schema: def.schema, migrations };
}

/** True when `x` is a {@link VersionedSchema}. */
export function isVersionedSchema(x: unknown): x is VersionedSchema {
  return typeof x === 'object' && x !== null && (x as { kind?: unknown }).kind === 'mittsync.schema';
}

/** Any accepted schema as a {@link VersionedSchema} (a plain validator is version 1). */
export function toVersioned(s: SchemaLike): VersionedSchema {
  if (isVersionedSchema(s)) return s;
  if (!isStandardSchema(s)) {
    throw new MittsyncError(
      'BAD_MESSAGE',
      'a bucket schema must implement Standard Schema v1 (`~standard`) or come from defineSchema',
    );
  }
  return { kind: 'mittsync.schema', version: 1, schema: s, migrations: {} };
}

// ---------------------------------------------------------------------------------------------
// The envelope
// ---------------------------------------------------------------------------------------------

/** Stores `data` as written under `version`: as it is for version 1, else in the envelope. */
export function wrapVersion(version: number, data: Value): Value {
  return version <= 1 ? data : { [VERSION_FIELD]: version, [DATA_FIELD]: data };
}

/** The writer's schema version and the data of a stored value (version 1 when it has no envelope). */
export function unwrapVersion(stored: unknown): { version: number; data: unknown } {
  if (typeof stored === 'object' && stored !== null && !Array.isArray(stored)) {
    const o = stored as Record<string, unknown>;
    const v = o[VERSION_FIELD];
    if (
      typeof v === 'number' &&
      Number.isSafeInteger(v) &&
      v >= 2 &&
      DATA_FIELD in o &&
      Object.keys(o).length === 2
    ) {
      return { version: v, data: o[DATA_FIELD] };
    }
  }
  return { version: 1, data: stored };
}

// ---------------------------------------------------------------------------------------------
// Issues and paths
// ---------------------------------------------------------------------------------------------

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** A Standard Schema issue path as code would write it: `items[2].price`, `tags["a b"]`; '' for the root. */
export function issuePath(issue: Pick<StandardIssue, 'path'>): string {
  let out = '';
  for (const seg of issue.path ?? []) {
    const key = typeof seg === 'object' && seg !== null ? (seg as { key: PropertyKey }).key : seg;
    if (typeof key === 'number') out += `[${key}]`;
    else if (typeof key === 'symbol') out += `[${String(key)}]`;
    else if (IDENT.test(key)) out += out === '' ? key : `.${key}`;
    else if (/^(0|[1-9][0-9]*)$/.test(key)) out += `[${key}]`;
    else out += `[${JSON.stringify(key)}]`;
  }
  return out;
}

/** One issue with its path as a string (what errors and statuses carry). */
export interface ValueIssue {
  path: string;
  message: string;
}

export function toValueIssues(issues: ReadonlyArray<StandardIssue>): ValueIssue[] {
  return issues.map((i) => ({ path: issuePath(i), message: i.message }));
}

function describe(issues: readonly ValueIssue[]): string {
  const first = issues[0];
  if (first === undefined) return 'invalid';
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
  return `${first.path === '' ? '(root)' : first.path}: ${first.message}${more}`;
}

/** The typed error of a value its schema refuses; `detail.path` is the first issue's path. */
export function invalidValueError(bucket: string, key: string, issues: readonly ValueIssue[]): MittsyncError {
  return new MittsyncError('INVALID_VALUE', `invalid value for ${bucket}/${key} at ${describe(issues)}`, {
    detail: { bucket, key, path: issues[0]?.path ?? '', issues },
  });
}

// ---------------------------------------------------------------------------------------------
// Validating, migrating, reading
// ---------------------------------------------------------------------------------------------

function then<T, U>(x: MaybePromise<T>, f: (t: T) => U): MaybePromise<U> {
  return x instanceof Promise ? x.then(f) : f(x);
}

function validate(schema: StandardSchemaV1, value: unknown): MaybePromise<StandardResult<unknown>> {
  return schema['~standard'].validate(value);
}

/**
 * Checks a value about to be written and returns what to store: the schema's output (defaults
 * filled, unknown keys dropped as the schema says) in the envelope of `schema.version`. Throws
 * (or rejects) `INVALID_VALUE` naming the path. Synchronous when the validator is.
 */
export function prepareWrite(
  schema: VersionedSchema,
  bucket: string,
  key: string,
  value: unknown,
): MaybePromise<Value> {
  return then(validate(schema.schema, value), (r) => {
    if (r.issues !== undefined) throw invalidValueError(bucket, key, toValueIssues(r.issues));
    return wrapVersion(schema.version, r.value as Value);
  });
}

/** What reading a stored value through a schema gave. */
export type ReadOutcome<T> =
  | { ok: true; value: T; version: number }
  /** `newer`: written under a version this code does not know; `invalid`: fails the schema (or a migration). */
  | { ok: false; reason: 'invalid' | 'newer'; version: number; issues: ValueIssue[] };

/** Runs the migrations from `from` up to `schema.version`; an issue when one is missing or throws. */
export function migrate(
  schema: VersionedSchema,
  from: number,
  data: unknown,
): { ok: true; value: unknown } | { ok: false; issues: ValueIssue[] } {
  let value = data;
  for (let v = from + 1; v <= schema.version; v++) {
    const fn = schema.migrations[v];
    if (fn === undefined) {
      return {
        ok: false,
        issues: [{ path: '', message: `no migration to version ${v} (value has version ${from})` }],
      };
    }
    try {
      value = fn(value);
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      return { ok: false, issues: [{ path: '', message: `migration to version ${v} failed: ${why}` }] };
    }
  }
  return { ok: true, value };
}

/**
 * Reads a stored value through `schema`: unwraps its version, migrates an older one, refuses a
 * newer one (never guessing its shape) and validates. Synchronous when the validator is.
 */
export function readValue<T = unknown>(
  schema: VersionedSchema,
  stored: unknown,
): MaybePromise<ReadOutcome<T>> {
  const { version, data } = unwrapVersion(stored);
  if (version > schema.version) {
    return {
      ok: false,
      reason: 'newer',
      version,
      issues: [
        {
          path: '',
          message: `written under schema version ${version}, newer than this code's ${schema.version}`,
        },
      ],
    };
  }
  const m = migrate(schema, version, data);
  if (!m.ok) return { ok: false, reason: 'invalid', version, issues: m.issues };
  return then(validate(schema.schema, m.value), (r): ReadOutcome<T> => {
    if (r.issues !== undefined)
      return { ok: false, reason: 'invalid', version, issues: toValueIssues(r.issues) };
    return { ok: true, value: r.value as T, version };
  });
}

/**
 * The relay's check of a pushed op: a `set` must read as valid through the relay's schema
 * (older versions through its migrations). A value of a version newer than the relay's schema
 * is refused: the relay is the authority and cannot vouch for a shape it does not know, so
 * its schema module is upgraded first. Deletes are not checked. Relay validators must be
 * synchronous (the push commits in one synchronous transaction): an async one refuses the op
 * with `INTERNAL`.
 */
export function checkPushedValue(schema: VersionedSchema, bucket: string, op: Op): MittsyncError | undefined {
  if (op.kind !== 'set') return undefined;
  let out: MaybePromise<ReadOutcome<unknown>>;
  try {
    out = readValue(schema, op.value);
  } catch (e) {
    return new MittsyncError('INTERNAL', `the relay's schema for ${bucket} threw: ${String(e)}`, {
      cause: e,
    });
  }
  if (out instanceof Promise) {
    out.catch(() => undefined);
    return new MittsyncError(
      'INTERNAL',
      `the relay's schema for ${bucket} validates asynchronously; relay schemas must be synchronous`,
    );
  }
  if (out.ok) return undefined;
  return invalidValueError(bucket, op.key, out.issues);
}

// ---------------------------------------------------------------------------------------------
// A map of schemas by bucket pattern (the relay's schema module)
// ---------------------------------------------------------------------------------------------

/** Schemas by bucket name or pattern (`*` matches any run of characters): `{ todos: s, 'board:*': t }`. */
export type SchemaMap = Readonly<Record<string, SchemaLike>>;

/**
 * Compiles a {@link SchemaMap} into a lookup. An exact name wins over patterns; among
 * patterns, the longest (most specific) wins. Throws `BAD_MESSAGE` for an entry that is not
 * a schema, so a bad module fails at startup.
 */
export function schemaLookup(map: SchemaMap): (bucket: string) => VersionedSchema | undefined {
  const exact = new Map<string, VersionedSchema>();
  const patterns: { re: RegExp; len: number; schema: VersionedSchema }[] = [];
  for (const [pattern, s] of Object.entries(map)) {
    let schema: VersionedSchema;
    try {
      schema = toVersioned(s);
    } catch (e) {
      throw new MittsyncError(
        'BAD_MESSAGE',
        `schema for ${JSON.stringify(pattern)}: ${(e as Error).message}`,
      );
    }
    if (!pattern.includes('*')) {
      exact.set(pattern, schema);
      continue;
    }
    const body = pattern
      .split('*')
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*');
    patterns.push({ re: new RegExp(`^${body}$`, 's'), len: pattern.length, schema });
  }
  patterns.sort((a, b) => b.len - a.len);
  return (bucket) => exact.get(bucket) ?? patterns.find((p) => p.re.test(bucket))?.schema;
}
