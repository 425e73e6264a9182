import { isBucketName, isReplicaId, MittsyncError } from '@mittsync/core';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
  errors as joseErrors,
  jwtVerify,
  SignJWT,
} from 'jose';

/**
 * The claim a token carries its bucket scopes in: glob patterns of bucket names, where `*`
 * matches any run of characters (`todo:*`, `user/alice/*`, `*`).
 */
export interface ScopeClaim {
  read: string[];
  write: string[];
  /**
   * Row-level scopes: bucket pattern -> the key prefixes the token may read and write in the
   * buckets it matches (`{ orders: ['user-42/'] }`). A bucket no pattern matches is whole; one
   * several match gets the union of their prefixes.
   */
  prefixes?: Record<string, string[]>;
  /** Groups the subject belongs to, for the admin control's `group:<name>` allow/deny entries. */
  groups?: string[];
  /** Admin scope: the token may call `/v1/admin/...` (list, inspect, control, reset buckets). */
  admin?: boolean;
}

/** Claims a relay token carries: `sub` is the replicaId it is bound to. */
export interface RelayTokenClaims extends JWTPayload {
  sub: string;
  mittsync?: ScopeClaim;
}

/** Who is on the other end of a connection, as established by a verified token. */
export interface Principal {
  /** The token subject: the only replicaId (and op origin) this connection may use. */
  readonly replicaId: string;
  /** When the token expires (ms since the epoch). */
  readonly expiresAt: number;
  canRead(bucket: string): boolean;
  canWrite(bucket: string): boolean;
  /**
   * The key prefixes the token limits `bucket` to, or undefined when it may use every key.
   * Subscriptions get at most these keys and pushes outside them are refused per op.
   */
  keyPrefixes?(bucket: string): readonly string[] | undefined;
  /** The token's groups (claim `mittsync.groups`). */
  readonly groups?: readonly string[];
  /** True for an admin-scoped token (claim `mittsync.admin: true`). */
  readonly admin?: boolean;
}

/** How tokens are verified. Exactly one of `secret` and `jwks`. */
export interface AuthOptions {
  /** Shared HS256 secret (at least 32 bytes). */
  secret?: string | Uint8Array;
  /** A JWKS URL (fetched and cached by jose) or an inline key set. */
  jwks?: string | URL | JSONWebKeySet;
  /** Accepted algorithms; default `['HS256']` with a secret, `['RS256', 'ES256', 'EdDSA']` with a JWKS. */
  algorithms?: string[];
  /** Required `aud` when set. */
  audience?: string | string[];
  /** Required `iss` when set. */
  issuer?: string | string[];
  /** Seconds of clock skew tolerated on `exp`/`nbf` (default 5). */
  clockToleranceS?: number;
}

/** Verifies bearer tokens into {@link Principal}s. */
export interface Authenticator {
  verify(token: string): Promise<Principal>;
}

const MAX_PATTERNS = 64;
const PATTERN_RE = /^[A-Za-z0-9_.:/*-]{1,128}$/;

/** Compiles bucket glob patterns into one anchored RegExp; `*` is the only wildcard. */
export function compileScope(patterns: readonly string[]): RegExp | null {
  if (patterns.length === 0) return null;
  const parts = patterns.map((p) => p.split('*').map(escapeRegExp).join('.*'));
  return new RegExp(`^(?:${parts.join('|')})$`);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** True when `bucket` matches one of the glob `patterns`. */
export function scopeAllows(patterns: readonly string[], bucket: string): boolean {
  return compileScope(patterns)?.test(bucket) ?? false;
}

function readPatterns(x: unknown, name: string): string[] {
  if (x === undefined) return [];
  if (
    !Array.isArray(x) ||
    x.length > MAX_PATTERNS ||
    !x.every((p) => typeof p === 'string' && PATTERN_RE.test(p))
  ) {
    throw new MittsyncError(
      'UNAUTHENTICATED',
      `token claim mittsync.${name} must be an array of at most ${MAX_PATTERNS} bucket patterns`,
    );
  }
  return x as string[];
}

/** Compiled scopes are shared by every connection presenting the same claim. */
const scopeCache = new Map<string, RegExp | null>();

function cachedScope(patterns: string[]): RegExp | null {
  const key = patterns.join('\n');
  let re = scopeCache.get(key);
  if (re === undefined) {
    re = compileScope(patterns);
    if (scopeCache.size > 1000) scopeCache.clear();
    scopeCache.set(key, re);
  }
  return re;
}

/** Turns a verified payload into a principal; rejects a missing/odd subject or scope claim. */
export function principalFromClaims(payload: JWTPayload): Principal {
  if (!isReplicaId(payload.sub)) {
    throw new MittsyncError(
      'UNAUTHENTICATED',
      'token subject (sub) must be a replicaId: 1-64 chars of [A-Za-z0-9_-]',
    );
  }
  if (typeof payload.exp !== 'number')
    throw new MittsyncError('UNAUTHENTICATED', 'token has no expiry (exp)');
  const claim = payload.mittsync;
  if (claim !== undefined && (typeof claim !== 'object' || claim === null)) {
    throw new MittsyncError('UNAUTHENTICATED', 'token claim mittsync must be an object { read, write }');
  }
  const c = (claim ?? {}) as Record<string, unknown>;
  const groups = readGroups(c.groups);
  if (c.admin !== undefined && typeof c.admin !== 'boolean')
    throw new MittsyncError('UNAUTHENTICATED', 'token claim mittsync.admin must be a boolean');
  const read = cachedScope(readPatterns(c.read, 'read'));
  const write = cachedScope(readPatterns(c.write, 'write'));
  const prefixes = readPrefixScopes(c.prefixes);
  return {
    replicaId: payload.sub,
    expiresAt: payload.exp * 1000,
    // Default deny: no pattern, no access. Bucket names are validated before these run.
    canRead: (bucket) => isBucketName(bucket) && (read?.test(bucket) ?? false),
    canWrite: (bucket) => isBucketName(bucket) && (write?.test(bucket) ?? false),
    ...(groups.length === 0 ? {} : { groups }),
    ...(c.admin === true ? { admin: true } : {}),
    ...(prefixes === undefined ? {} : { keyPrefixes: prefixes }),
  };
}

const MAX_KEY_PREFIXES = 32;

/** Reads `mittsync.prefixes` into a lookup, or undefined when the token has none. */
function readPrefixScopes(x: unknown): ((bucket: string) => readonly string[] | undefined) | undefined {
  if (x === undefined) return undefined;
  const fail = (): never => {
    throw new MittsyncError(
      'UNAUTHENTICATED',
      `token claim mittsync.prefixes must map at most ${MAX_PATTERNS} bucket patterns to at most ${MAX_KEY_PREFIXES} non-empty key prefixes each`,
    );
  };
  if (typeof x !== 'object' || x === null || Array.isArray(x)) fail();
  const entries = Object.entries(x as Record<string, unknown>);
  if (entries.length > MAX_PATTERNS) fail();
  // Kept with a socket (a Durable Object's attachment) like a spec: bounded as one.
  if (JSON.stringify(x).length > 4096) fail();
  const rules = entries.map(([pattern, list]) => {
    if (!PATTERN_RE.test(pattern)) fail();
    if (
      !Array.isArray(list) ||
      list.length > MAX_KEY_PREFIXES ||
      !list.every((p) => typeof p === 'string' && p.length > 0 && p.length <= 512)
    )
      fail();
    return { re: cachedScope([pattern]) as RegExp, prefixes: list as string[] };
  });
  return (bucket) => {
    let out: string[] | undefined;
    for (const r of rules) if (r.re.test(bucket)) out = [...(out ?? []), ...r.prefixes];
    return out;
  };
}

const GROUP_RE = /^[A-Za-z0-9_.:@-]{1,128}$/;

function readGroups(x: unknown): string[] {
  if (x === undefined) return [];
  if (
    !Array.isArray(x) ||
    x.length > MAX_PATTERNS ||
    !x.every((g) => typeof g === 'string' && GROUP_RE.test(g))
  ) {
    throw new MittsyncError(
      'UNAUTHENTICATED',
      `token claim mittsync.groups must be an array of at most ${MAX_PATTERNS} names of [A-Za-z0-9_.:@-]`,
    );
  }
  return x as string[];
}

function secretKey(secret: string | Uint8Array): Uint8Array {
  const key = typeof secret === 'string' ? new TextEncoder().encode(secret) : secret;
  if (key.byteLength < 32)
    throw new MittsyncError('BAD_MESSAGE', 'the HS256 secret must be at least 32 bytes');
  return key;
}

/**
 * Creates the token verifier: algorithms pinned, `exp` required, `aud`/`iss` checked when
 * configured.
 *
 * @example
 * ```ts
 * const auth = createAuthenticator({ secret: process.env.MITTSYNC_SECRET });
 * const who = await auth.verify(token); // who.replicaId, who.canWrite('todo:1')
 * ```
 */
export function createAuthenticator(opts: AuthOptions): Authenticator {
  if ((opts.secret === undefined) === (opts.jwks === undefined)) {
    throw new MittsyncError('BAD_MESSAGE', 'auth needs exactly one of `secret` and `jwks`');
  }
  let key: Uint8Array | JWTVerifyGetKey;
  let algorithms: string[];
  if (opts.secret !== undefined) {
    key = secretKey(opts.secret);
    algorithms = opts.algorithms ?? ['HS256'];
  } else {
    const jwks = opts.jwks as string | URL | JSONWebKeySet;
    key =
      typeof jwks === 'string' || jwks instanceof URL
        ? createRemoteJWKSet(new URL(jwks))
        : createLocalJWKSet(jwks);
    algorithms = opts.algorithms ?? ['RS256', 'ES256', 'EdDSA'];
  }
  if (algorithms.some((a) => a === 'none' || a.length === 0)) {
    throw new MittsyncError('BAD_MESSAGE', 'unsecured tokens (alg "none") are never accepted');
  }
  const verifyOpts = {
    algorithms,
    requiredClaims: ['sub', 'exp'],
    clockTolerance: opts.clockToleranceS ?? 5,
    ...(opts.audience === undefined ? {} : { audience: opts.audience }),
    ...(opts.issuer === undefined ? {} : { issuer: opts.issuer }),
  };
  return {
    async verify(token: string): Promise<Principal> {
      if (typeof token !== 'string' || token.length === 0 || token.length > 8192) {
        throw new MittsyncError('UNAUTHENTICATED', 'missing or oversized token');
      }
      try {
        const { payload } =
          key instanceof Uint8Array
            ? await jwtVerify(token, key, verifyOpts)
            : await jwtVerify(token, key, verifyOpts);
        return principalFromClaims(payload);
      } catch (e) {
        if (e instanceof MittsyncError) throw e;
        if (e instanceof joseErrors.JWTExpired) {
          throw new MittsyncError('TOKEN_EXPIRED', 'token expired: fetch a new one', { cause: e });
        }
        const why = e instanceof joseErrors.JOSEError ? e.code : 'invalid';
        throw new MittsyncError('UNAUTHENTICATED', `invalid token (${why})`, { cause: e });
      }
    },
  };
}

/**
 * Signs an HS256 relay token (dev mode, tests, server-side writers that share the secret).
 *
 * @example
 * ```ts
 * const token = await signToken(secret, { sub: 'server-1', read: ['*'], write: ['todo:*'] });
 * ```
 */
export async function signToken(
  secret: string | Uint8Array,
  claims: {
    sub: string;
    read?: string[];
    write?: string[];
    /** Key prefixes per bucket pattern (see {@link ScopeClaim.prefixes}). */
    prefixes?: Record<string, string[]>;
    groups?: string[];
    admin?: boolean;
    ttlS?: number;
    audience?: string;
    issuer?: string;
  },
): Promise<string> {
  const scope: ScopeClaim = {
    read: claims.read ?? [],
    write: claims.write ?? [],
    ...(claims.groups === undefined ? {} : { groups: claims.groups }),
    ...(claims.admin === true ? { admin: true } : {}),
  };
  if (claims.prefixes !== undefined) scope.prefixes = claims.prefixes;
  let jwt = new SignJWT({ mittsync: scope })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(claims.sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + (claims.ttlS ?? 3600));
  if (claims.audience !== undefined) jwt = jwt.setAudience(claims.audience);
  if (claims.issuer !== undefined) jwt = jwt.setIssuer(claims.issuer);
  return jwt.sign(secretKey(secret));
}

/** Extracts a bearer token from an `Authorization` header value. */
export function bearerToken(header: string | null | undefined): string | undefined {
  if (header === undefined || header === null) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m?.[1];
}

/**
 * Dev mode's authenticator next to the configured one: dev tokens verify with dev mode's own
 * secret, real tokens with `auth`, and neither key signs the other's tokens.
 */
export function eitherAuthenticator(dev: Authenticator, real: Authenticator): Authenticator {
  return {
    verify: async (token) => {
      try {
        return await dev.verify(token);
      } catch (devError) {
        try {
          return await real.verify(token);
        } catch (realError) {
          // A dev token that verified but expired says more than the real key's complaint.
          throw (devError as { code?: string }).code === 'TOKEN_EXPIRED' ? devError : realError;
        }
      }
    },
  };
}
