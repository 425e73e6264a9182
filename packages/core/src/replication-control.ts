import { MittsyncError } from './errors';

/**
 * One direction of replication for a bucket. `enabled: false` refuses everyone; otherwise a
 * principal on `deny` is refused, and when `allow` is non-empty only principals on it pass.
 * Principals are written `sub:<token subject>` or `group:<token group>`.
 */
export interface ReplicationRule {
  enabled: boolean;
  allow: string[];
  deny: string[];
}

/** Admin control of a bucket: `out` serves subscriptions (and pages), `in` accepts pushes. */
export interface BucketControl {
  out: ReplicationRule;
  in: ReplicationRule;
}

/** Who asks, as the control rules see it. */
export interface ReplicationPrincipal {
  subject: string;
  groups?: readonly string[];
}

export type ReplicationDirection = 'in' | 'out';

const OPEN: ReplicationRule = { enabled: true, allow: [], deny: [] };

/** The control of a bucket nobody configured: replication in and out allowed for every token. */
export function defaultControl(): BucketControl {
  return { out: { ...OPEN, allow: [], deny: [] }, in: { ...OPEN, allow: [], deny: [] } };
}

function matches(list: readonly string[], p: ReplicationPrincipal): boolean {
  for (const e of list) {
    if (e === `sub:${p.subject}`) return true;
    if (e.startsWith('group:') && p.groups?.includes(e.slice(6)) === true) return true;
  }
  return false;
}

/** Whether `p` may replicate `dir` (see {@link ReplicationRule}). */
export function replicationAllowed(
  control: BucketControl,
  dir: ReplicationDirection,
  p: ReplicationPrincipal,
): boolean {
  const rule = control[dir];
  if (!rule.enabled) return false;
  if (matches(rule.deny, p)) return false;
  return rule.allow.length === 0 || matches(rule.allow, p);
}

/** The typed error a refused subscription (`out`) or push (`in`) gets. */
export function replicationRefused(bucket: string, dir: ReplicationDirection): MittsyncError {
  const what = dir === 'out' ? 'replication out (subscriptions and pages)' : 'replication in (pushes)';
  return new MittsyncError(
    'REPLICATION_REFUSED',
    `an administrator has not allowed ${what} of bucket ${bucket} for this principal`,
    { detail: { bucket, direction: dir } },
  );
}

const ENTRY_RE = /^(sub|group):[A-Za-z0-9_.:@-]{1,128}$/;
const MAX_ENTRIES = 256;

function readList(x: unknown, name: string): string[] {
  if (x === undefined) return [];
  if (
    !Array.isArray(x) ||
    x.length > MAX_ENTRIES ||
    !x.every((e) => typeof e === 'string' && ENTRY_RE.test(e))
  ) {
    throw new MittsyncError(
      'BAD_MESSAGE',
      `${name} must be an array of at most ${MAX_ENTRIES} principals written sub:<subject> or group:<group>`,
    );
  }
  return [...new Set(x as string[])];
}

function readRule(x: unknown, name: string, base: ReplicationRule): ReplicationRule {
  if (x === undefined) return base;
  if (typeof x !== 'object' || x === null || Array.isArray(x))
    throw new MittsyncError('BAD_MESSAGE', `${name} must be an object { enabled?, allow?, deny? }`);
  const r = x as Record<string, unknown>;
  if (r.enabled !== undefined && typeof r.enabled !== 'boolean')
    throw new MittsyncError('BAD_MESSAGE', `${name}.enabled must be a boolean`);
  return {
    enabled: r.enabled ?? base.enabled,
    allow: r.allow === undefined ? base.allow : readList(r.allow, `${name}.allow`),
    deny: r.deny === undefined ? base.deny : readList(r.deny, `${name}.deny`),
  };
}

/**
 * Validates a control patch (`{ out?: Partial<ReplicationRule>, in?: ... }`, as the admin API
 * takes it) and applies it over `base`. Throws `BAD_MESSAGE` on anything malformed.
 */
export function patchControl(base: BucketControl, patch: unknown): BucketControl {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch))
    throw new MittsyncError('BAD_MESSAGE', 'control must be an object { out?, in? }');
  const p = patch as Record<string, unknown>;
  for (const k of Object.keys(p))
    if (k !== 'out' && k !== 'in') throw new MittsyncError('BAD_MESSAGE', `unknown control field ${k}`);
  return { out: readRule(p.out, 'out', base.out), in: readRule(p.in, 'in', base.in) };
}
