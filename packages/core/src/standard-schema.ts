/**
 * The Standard Schema v1 interface (https://standardschema.dev), written out here so core
 * depends on no validation library: Zod, Valibot, ArkType and others implement `~standard`,
 * and any of them can type and check a bucket.
 */

/** A validator in the Standard Schema v1 form. */
export interface StandardSchemaV1<Input = unknown, Output = Input> {
  readonly '~standard': StandardSchemaProps<Input, Output>;
}

/** The `~standard` property of a {@link StandardSchemaV1}. */
export interface StandardSchemaProps<Input = unknown, Output = Input> {
  readonly version: 1;
  readonly vendor: string;
  /** Checks `value`; libraries with async refinements return a promise. */
  readonly validate: (value: unknown) => StandardResult<Output> | Promise<StandardResult<Output>>;
  /** Carries the input and output types for inference only (never set at run time). */
  readonly types?: StandardTypes<Input, Output> | undefined;
}

/** What `validate` returns: the (possibly transformed) value, or the issues. */
export type StandardResult<Output> = StandardSuccess<Output> | StandardFailure;

export interface StandardSuccess<Output> {
  readonly value: Output;
  readonly issues?: undefined;
}

export interface StandardFailure {
  readonly issues: ReadonlyArray<StandardIssue>;
}

/** One problem found in a value; `path` leads from the root to the offending part. */
export interface StandardIssue {
  readonly message: string;
  readonly path?: ReadonlyArray<PropertyKey | StandardPathSegment> | undefined;
}

export interface StandardPathSegment {
  readonly key: PropertyKey;
}

export interface StandardTypes<Input = unknown, Output = Input> {
  readonly input: Input;
  readonly output: Output;
}

/** The type a schema accepts. */
export type StandardInput<S extends StandardSchemaV1> = NonNullable<S['~standard']['types']>['input'];

/** The type a schema produces. */
export type StandardOutput<S extends StandardSchemaV1> = NonNullable<S['~standard']['types']>['output'];

/** True when `x` looks like a Standard Schema v1 validator. */
export function isStandardSchema(x: unknown): x is StandardSchemaV1 {
  if ((typeof x !== 'object' && typeof x !== 'function') || x === null) return false;
  const props = (x as { '~standard'?: unknown })['~standard'];
  return (
    typeof props === 'object' &&
    props !== null &&
    (props as { version?: unknown }).version === 1 &&
    typeof (props as { validate?: unknown }).validate === 'function'
  );
}
