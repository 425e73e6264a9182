import { MittsyncError } from './errors';
import type { Op, Value } from './model';
import { utf8Length } from './utf8';

/**
 * A key range `[gte, lt)` in key order (UTF-16 code units, core's `keyOrder`): `gte` is
 * inclusive, `lt` exclusive; an absent bound is open.
 */
export interface KeyRange {
  gte?: string;
  lt?: string;
}

/**
 * A replication spec: what part of a bucket a subscription holds. Keys under any of
 * `prefixes` or inside any of `ranges` (both absent: every key), and of each value only the
 * top-level `fields` when given (a projection). The relay serves only matching entries (and
 * projected values) on every path and refuses writes outside it with `OUTSIDE_SPEC`.
 *
 * @example
 * ```ts
 * const spec: ReplicationSpec = { prefixes: ['user-42/'], fields: ['title', 'done'] };
 * ```
 */
export interface ReplicationSpec {
  prefixes?: string[];
  ranges?: KeyRange[];
  /** Top-level fields of object values this subscription sees and writes; absent: whole values. */
  fields?: string[];
}

/** A normalized span `[lo, hi)`: `hi` undefined is open; `lo` '' is the first key. */
export interface KeySpan {
  lo: string;
  hi: string | undefined;
}

/** Most prefixes plus ranges in one spec, and most projected fields. */
export const MAX_SPEC_PARTS = 32;
export const MAX_SPEC_FIELDS = 64;
/**
 * Most bytes of a spec's strings: a relay keeps a subscription's spec with its socket (a Durable
 * Object's socket attachment, at most 16 KiB, holds it across hibernation).
 */
export const MAX_SPEC_BYTES = 4096;
const MAX_FIELD_CHARS = 128;

function bad(message: string): never {
  throw new MittsyncError('BAD_MESSAGE', message);
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function checkBound(x: unknown, what: string, maxKeyBytes: number): string {
  if (typeof x !== 'string' || x.length === 0 || utf8Length(x) > maxKeyBytes)
    bad(`${what} must be a non-empty string of at most ${maxKeyBytes} bytes`);
  return x;
}

/**
 * Validates a spec from the wire or an application. Throws `BAD_MESSAGE` naming what is wrong.
 * The result holds only the known fields, so it can be stored and compared as JSON.
 */
export function validateSpec(x: unknown, maxKeyBytes = 512): ReplicationSpec {
  if (!isObject(x)) bad('spec must be an object { prefixes?, ranges?, fields? }');
  for (const k of Object.keys(x))
    if (k !== 'prefixes' && k !== 'ranges' && k !== 'fields')
      bad(`spec has an unknown field ${k.slice(0, 40)}`);
  const out: ReplicationSpec = {};
  let parts = 0;
  if (x.prefixes !== undefined) {
    if (!Array.isArray(x.prefixes)) bad('spec.prefixes must be an array of strings');
    out.prefixes = x.prefixes.map((p) => checkBound(p, 'spec.prefixes[]', maxKeyBytes));
    parts += out.prefixes.length;
  }
  if (x.ranges !== undefined) {
    if (!Array.isArray(x.ranges)) bad('spec.ranges must be an array of { gte?, lt? }');
    out.ranges = x.ranges.map((r) => {
      if (!isObject(r)) bad('spec.ranges[] must be an object { gte?, lt? }');
      for (const k of Object.keys(r))
        if (k !== 'gte' && k !== 'lt') bad('spec.ranges[] takes only gte and lt');
      const range: KeyRange = {};
      if (r.gte !== undefined) range.gte = checkBound(r.gte, 'spec.ranges[].gte', maxKeyBytes);
      if (r.lt !== undefined) range.lt = checkBound(r.lt, 'spec.ranges[].lt', maxKeyBytes);
      if (range.gte !== undefined && range.lt !== undefined && range.gte >= range.lt)
        bad('spec.ranges[] must have gte < lt');
      return range;
    });
    parts += out.ranges.length;
  }
  if (parts > MAX_SPEC_PARTS) bad(`a spec holds at most ${MAX_SPEC_PARTS} prefixes and ranges`);
  if (x.fields !== undefined) {
    if (!Array.isArray(x.fields) || x.fields.length === 0 || x.fields.length > MAX_SPEC_FIELDS)
      bad(`spec.fields must be an array of 1-${MAX_SPEC_FIELDS} field names`);
    const seen = new Set<string>();
    for (const f of x.fields) {
      if (typeof f !== 'string' || f.length === 0 || f.length > MAX_FIELD_CHARS || f === '__proto__')
        bad(`spec.fields[] must be names of 1-${MAX_FIELD_CHARS} chars (not __proto__)`);
      if (seen.has(f)) bad(`spec.fields lists ${f.slice(0, 40)} twice`);
      seen.add(f);
    }
    out.fields = [...seen];
  }
  let bytes = 0;
  for (const p of out.prefixes ?? []) bytes += utf8Length(p);
  for (const r of out.ranges ?? []) bytes += utf8Length(r.gte ?? '') + utf8Length(r.lt ?? '');
  for (const f of out.fields ?? []) bytes += utf8Length(f);
  if (bytes > MAX_SPEC_BYTES)
    bad(`a spec's prefixes, bounds and fields take at most ${MAX_SPEC_BYTES} bytes`);
  return out;
}

/**
 * The first string after every string that starts with `p`, in UTF-16 code unit order, or
 * undefined when there is none (`p` is all U+FFFF units).
 */
export function prefixEnd(p: string): string | undefined {
  let end = p.length;
  while (end > 0 && p.charCodeAt(end - 1) === 0xffff) end--;
  if (end === 0) return undefined;
  return p.slice(0, end - 1) + String.fromCharCode(p.charCodeAt(end - 1) + 1);
}

const spansCache = new WeakMap<ReplicationSpec, readonly KeySpan[]>();

/** True when the spec restricts keys (it has prefixes or ranges). */
export function restrictsKeys(spec: ReplicationSpec | undefined): boolean {
  return spec !== undefined && (spec.prefixes !== undefined || spec.ranges !== undefined);
}

/**
 * The keys `spec` covers as sorted, disjoint, non-touching spans (touching ones merged). A
 * spec without prefixes or ranges covers every key: one span `['', undefined)`.
 */
export function specSpans(spec: ReplicationSpec | undefined): readonly KeySpan[] {
  if (spec === undefined || !restrictsKeys(spec)) return ALL;
  const cached = spansCache.get(spec);
  if (cached !== undefined) return cached;
  const raw: KeySpan[] = [];
  for (const p of spec.prefixes ?? []) raw.push({ lo: p, hi: prefixEnd(p) });
  for (const r of spec.ranges ?? []) raw.push({ lo: r.gte ?? '', hi: r.lt });
  const spans = mergeSpans(raw);
  spansCache.set(spec, spans);
  return spans;
}

const ALL: readonly KeySpan[] = [{ lo: '', hi: undefined }];

/** Sorts and merges overlapping or touching spans. */
export function mergeSpans(raw: readonly KeySpan[]): KeySpan[] {
  const sorted = [...raw]
    .filter((s) => s.hi === undefined || s.lo < s.hi)
    .sort((a, b) => (a.lo < b.lo ? -1 : a.lo > b.lo ? 1 : 0));
  const out: KeySpan[] = [];
  for (const s of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && (last.hi === undefined || s.lo <= last.hi)) {
      if (last.hi !== undefined && (s.hi === undefined || s.hi > last.hi)) last.hi = s.hi;
    } else out.push({ ...s });
  }
  return out;
}

/** True when `key` lies in one of `spans`. */
export function spansCover(spans: readonly KeySpan[], key: string): boolean {
  // Spans are few (at most MAX_SPEC_PARTS): a linear scan beats a search's bookkeeping.
  for (const s of spans) {
    if (key < s.lo) return false;
    if (s.hi === undefined || key < s.hi) return true;
  }
  return false;
}

/** True when `spec` covers `key` (a spec that is undefined covers every key). */
export function specCovers(spec: ReplicationSpec | undefined, key: string): boolean {
  return spec === undefined || !restrictsKeys(spec) || spansCover(specSpans(spec), key);
}

/** True when every key of `inner` is a key of `outer`. */
export function spansWithin(inner: readonly KeySpan[], outer: readonly KeySpan[]): boolean {
  // Both are merged: a span of `inner` lies inside the union only if it lies inside one span.
  return inner.every((i) =>
    outer.some((o) => o.lo <= i.lo && (o.hi === undefined || (i.hi !== undefined && i.hi <= o.hi))),
  );
}

/** The parts of `a` not in `b` (what widening from `b` to `a` must download). */
export function subtractSpans(a: readonly KeySpan[], b: readonly KeySpan[]): KeySpan[] {
  let rest: KeySpan[] = a.map((s) => ({ ...s }));
  for (const cut of b) {
    const next: KeySpan[] = [];
    for (const s of rest) {
      const overlaps = (cut.hi === undefined || s.lo < cut.hi) && (s.hi === undefined || cut.lo < s.hi);
      if (!overlaps) {
        next.push(s);
        continue;
      }
      if (s.lo < cut.lo) next.push({ lo: s.lo, hi: cut.lo });
      if (cut.hi !== undefined && (s.hi === undefined || cut.hi < s.hi)) next.push({ lo: cut.hi, hi: s.hi });
    }
    rest = next;
  }
  return rest;
}

/** A spec whose keys are `spans` (and no projection). */
export function spansToSpec(spans: readonly KeySpan[]): ReplicationSpec {
  return {
    ranges: spans
      .map((s) => (s.hi === undefined ? { gte: s.lo } : { gte: s.lo, lt: s.hi }))
      .map((r) => (r.gte === '' ? (r.lt === undefined ? {} : { lt: r.lt }) : r)),
  };
}

/** A canonical string of a spec: equal for specs that cover the same keys and fields. */
export function specKey(spec: ReplicationSpec | undefined): string {
  if (spec === undefined) return '';
  const fields = spec.fields === undefined ? '' : [...spec.fields].sort().join('\u0000');
  return JSON.stringify([restrictsKeys(spec) ? specSpans(spec) : null, fields]);
}

/**
 * The part of `value` a projection on `fields` sees: its listed top-level fields. A value that
 * is not an object has no fields: it is seen as `{}`.
 */
export function projectValue(fields: readonly string[] | undefined, value: Value): Value {
  if (fields === undefined) return value;
  const out: { [k: string]: Value } = {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return out;
  for (const f of fields) if (Object.hasOwn(value, f)) out[f] = value[f] as Value;
  return out;
}

/**
 * A write through a projection merged into the stored value: the stored fields outside the
 * projection are kept, the projected ones are those of `written` (absent ones removed).
 */
export function mergeProjected(fields: readonly string[], stored: Value | undefined, written: Value): Value {
  const out: { [k: string]: Value } = {};
  if (typeof stored === 'object' && stored !== null && !Array.isArray(stored)) {
    const seen = new Set(fields);
    for (const k of Object.keys(stored)) if (!seen.has(k)) out[k] = stored[k] as Value;
  }
  if (typeof written === 'object' && written !== null && !Array.isArray(written))
    for (const k of Object.keys(written)) out[k] = written[k] as Value;
  return out;
}

/**
 * Why a write (an op, or a local put/delete) does not fit `spec`, or undefined when it does:
 * its key is outside the spec, or, through a projection, it deletes (a projection cannot see
 * the whole entry) or sets a value that is not an object of projected fields.
 */
export function outsideSpec(
  spec: ReplicationSpec | undefined,
  op: Pick<Op, 'key' | 'kind' | 'value'>,
): MittsyncError | undefined {
  if (spec === undefined) return undefined;
  if (!specCovers(spec, op.key))
    return new MittsyncError(
      'OUTSIDE_SPEC',
      `key ${op.key.slice(0, 80)} is outside this subscription's spec`,
      {
        detail: { key: op.key },
      },
    );
  const fields = spec.fields;
  if (fields === undefined) return undefined;
  if (op.kind === 'del')
    return new MittsyncError(
      'OUTSIDE_SPEC',
      `a projected subscription (fields ${fields.join(', ')}) cannot delete ${op.key.slice(0, 80)}: it sees only some fields`,
      { detail: { key: op.key } },
    );
  const v = op.value;
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    return new MittsyncError(
      'OUTSIDE_SPEC',
      'a projected subscription writes objects of its projected fields only',
      {
        detail: { key: op.key },
      },
    );
  const allowed = new Set(fields);
  const extra = Object.keys(v).find((k) => !allowed.has(k));
  if (extra !== undefined)
    return new MittsyncError(
      'OUTSIDE_SPEC',
      `field ${extra.slice(0, 40)} is outside this subscription's projection`,
      {
        detail: { key: op.key, field: extra },
      },
    );
  return undefined;
}

/** `spec` with its keys restricted to `prefixes` (a token's scope), keeping its projection. */
export function specWithPrefixes(
  spec: ReplicationSpec | undefined,
  prefixes: readonly string[],
): ReplicationSpec {
  return { prefixes: [...prefixes], ...(spec?.fields === undefined ? {} : { fields: spec.fields }) };
}

/** True when every key `spec` covers lies under one of `prefixes`. */
export function specWithinPrefixes(spec: ReplicationSpec | undefined, prefixes: readonly string[]): boolean {
  if (!restrictsKeys(spec)) return false;
  return spansWithin(specSpans(spec), specSpans({ prefixes: [...prefixes] }));
}

/**
 * The spec a subscription gets under a token limited to key `prefixes` (undefined: no limit):
 * a spec without keys takes the token's prefixes (keeping its projection); one with keys must
 * lie inside them, else `FORBIDDEN`.
 */
export function scopeSpec(
  spec: ReplicationSpec | undefined,
  prefixes: readonly string[] | undefined,
): ReplicationSpec | undefined {
  if (prefixes === undefined) return spec;
  if (!restrictsKeys(spec)) return specWithPrefixes(spec, prefixes);
  if (specWithinPrefixes(spec, prefixes)) return spec;
  throw new MittsyncError(
    'FORBIDDEN',
    `the subscription's spec reaches keys outside the token's prefixes (${prefixes.join(', ').slice(0, 200)})`,
  );
}

/**
 * The keys a page request asking for `asked` may read on a subscription with `sub`: `asked`'s
 * keys, which must lie within `sub`'s (else `FORBIDDEN`), with `sub`'s projection. Without
 * `asked`, `sub` itself.
 */
export function pageSpec(
  asked: ReplicationSpec | undefined,
  sub: ReplicationSpec | undefined,
): ReplicationSpec | undefined {
  if (asked === undefined) return sub;
  if (restrictsKeys(sub) && !(restrictsKeys(asked) && spansWithin(specSpans(asked), specSpans(sub)))) {
    throw new MittsyncError('FORBIDDEN', "the page's spec reaches keys outside the subscription's spec");
  }
  const keys: ReplicationSpec = {};
  if (asked.prefixes !== undefined) keys.prefixes = asked.prefixes;
  if (asked.ranges !== undefined) keys.ranges = asked.ranges;
  const fields = sub === undefined ? asked.fields : sub.fields;
  return fields === undefined ? keys : { ...keys, fields };
}
