import type { StandardIssue, StandardResult, StandardSchemaV1 } from '../standard-schema';

/**
 * A tiny Standard Schema implementation for core's tests and the relay's schema-module tests:
 * core has no validation library, and these show the contract is all it relies on. Issues
 * carry paths the way libraries do (keys and indices, some as `{ key }` segments).
 */
export type Tiny<T> = StandardSchemaV1<T, T> & {
  check(value: unknown, path: PropertyKey[]): StandardIssue[];
};

function tiny<T>(check: (value: unknown, path: PropertyKey[]) => StandardIssue[]): Tiny<T> {
  return {
    check,
    '~standard': {
      version: 1,
      vendor: 'tiny',
      validate: (value): StandardResult<T> => {
        const issues = check(value, []);
        return issues.length === 0 ? { value: value as T } : { issues };
      },
    },
  };
}

const issue = (path: PropertyKey[], message: string): StandardIssue => ({
  message,
  // Every other segment as a `{ key }` object: both forms are in the spec.
  path: path.map((k, i) => (i % 2 === 1 ? { key: k } : k)),
});

export const tinyString = tiny<string>((v, p) =>
  typeof v === 'string' ? [] : [issue(p, 'expected a string')],
);
export const tinyNumber = tiny<number>((v, p) =>
  typeof v === 'number' && Number.isFinite(v) ? [] : [issue(p, 'expected a number')],
);
export const tinyBoolean = tiny<boolean>((v, p) =>
  typeof v === 'boolean' ? [] : [issue(p, 'expected a boolean')],
);

export function tinyArray<T>(item: Tiny<T>): Tiny<T[]> {
  return tiny<T[]>((v, p) =>
    Array.isArray(v) ? v.flatMap((x, i) => item.check(x, [...p, i])) : [issue(p, 'expected an array')],
  );
}

export function tinyObject<S extends Record<string, Tiny<unknown>>>(
  shape: S,
): Tiny<{ [K in keyof S]: S[K] extends Tiny<infer T> ? T : never }> {
  return tiny((v, p) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return [issue(p, 'expected an object')];
    return Object.entries(shape).flatMap(([k, s]) => s.check((v as Record<string, unknown>)[k], [...p, k]));
  });
}

/** The same schema, answering through a promise (as libraries with async refinements do). */
export function tinyAsync<T>(s: Tiny<T>): StandardSchemaV1<T, T> {
  return {
    '~standard': {
      version: 1,
      vendor: 'tiny-async',
      validate: async (value) => s['~standard'].validate(value),
    },
  };
}
