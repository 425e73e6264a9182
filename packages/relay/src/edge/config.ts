import { MittsyncError } from '@mittsync/core';
import { type Authenticator, type AuthOptions, createAuthenticator, eitherAuthenticator } from '../auth';
import { memoryDevRegistry } from '../dev-token';
import type { RelayLimits } from '../limits';
import type { AnalyticsEngineLike, DurableObjectNamespaceLike, FetcherLike } from './workers-api';

/**
 * The edge relay's bindings (wrangler.jsonc `vars`, secrets and bindings). Secrets are set with
 * `wrangler secret put`; every value is a string, as Workers hands them over.
 */
export interface EdgeEnv {
  /** The Durable Object namespace of `BucketObject`: one object per bucket. */
  BUCKETS: DurableObjectNamespaceLike;
  /** HS256 secret (at least 32 bytes). Exactly one of this and `MITTSYNC_JWKS`, unless dev mode. */
  MITTSYNC_SECRET?: string;
  /** A JWKS URL, or an inline JSON key set. */
  MITTSYNC_JWKS?: string;
  /** Required `aud`, comma-separated. */
  MITTSYNC_AUDIENCE?: string;
  /** Required `iss`, comma-separated. */
  MITTSYNC_ISSUER?: string;
  /** `"1"`: dev mode (`/v1/dev/token`), for `npm run start:edge` on a loopback address only. */
  MITTSYNC_DEV?: string;
  /** Dev mode's own signing secret (never `MITTSYNC_SECRET`). */
  MITTSYNC_DEV_SECRET?: string;
  /** JSON object of relay limit overrides (see the README's limits table). */
  MITTSYNC_LIMITS?: string;
  /** Comma-separated origins allowed to call the HTTP API from browsers, or `*`. */
  MITTSYNC_CORS_ORIGINS?: string;
  /** Milliseconds a state flush waits for writers. */
  MITTSYNC_FLUSH_TIMEOUT_MS?: string;
  /** Received-bytes report interval asked of clients (default 65536). */
  MITTSYNC_RECV_EVERY?: string;
  /** Static files (the demo), served for paths the relay does not own. */
  ASSETS?: FetcherLike;
  /** Optional Workers Analytics Engine dataset: one data point per committed batch. */
  METRICS?: AnalyticsEngineLike;
}

/** The configuration both the Worker and its objects derive from the bindings. */
export interface EdgeConfig {
  auth: Authenticator;
  limits: Partial<RelayLimits>;
  corsOrigins: string[] | '*' | undefined;
  dev: { secret: string } | undefined;
  flushTimeoutMs: number | undefined;
  recvEvery: number;
}

const list = (v: string | undefined): string[] | undefined =>
  v === undefined || v.trim() === ''
    ? undefined
    : v
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s.length > 0);

function positive(v: string | undefined, name: string): number | undefined {
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new MittsyncError('BAD_MESSAGE', `${name} must be a positive integer`);
  return n;
}

/** Reads the bindings; throws a typed error naming what is missing or malformed. */
export function edgeConfig(env: EdgeEnv): EdgeConfig {
  const dev = env.MITTSYNC_DEV === '1' || env.MITTSYNC_DEV === 'true';
  if (dev && (env.MITTSYNC_DEV_SECRET === undefined || env.MITTSYNC_DEV_SECRET.length < 32)) {
    throw new MittsyncError('UNAUTHENTICATED', 'dev mode needs MITTSYNC_DEV_SECRET (at least 32 characters)');
  }
  let real: Authenticator | undefined;
  if (env.MITTSYNC_SECRET !== undefined || env.MITTSYNC_JWKS !== undefined) {
    const audience = list(env.MITTSYNC_AUDIENCE);
    const issuer = list(env.MITTSYNC_ISSUER);
    const jwks = env.MITTSYNC_JWKS?.trim();
    const opts: AuthOptions = {
      ...(env.MITTSYNC_SECRET !== undefined ? { secret: env.MITTSYNC_SECRET } : {}),
      ...(jwks !== undefined ? { jwks: jwks.startsWith('{') ? JSON.parse(jwks) : jwks } : {}),
      ...(audience === undefined ? {} : { audience }),
      ...(issuer === undefined ? {} : { issuer }),
    };
    real = createAuthenticator(opts);
  }
  const devAuth = dev ? createAuthenticator({ secret: env.MITTSYNC_DEV_SECRET as string }) : undefined;
  const auth =
    devAuth === undefined ? real : real === undefined ? devAuth : eitherAuthenticator(devAuth, real);
  if (auth === undefined) {
    throw new MittsyncError(
      'UNAUTHENTICATED',
      'no auth configured: set the MITTSYNC_SECRET or MITTSYNC_JWKS secret (wrangler secret put)',
    );
  }
  let limits: Partial<RelayLimits> = {};
  if (env.MITTSYNC_LIMITS !== undefined && env.MITTSYNC_LIMITS.trim() !== '') {
    const parsed: unknown = JSON.parse(env.MITTSYNC_LIMITS);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new MittsyncError('BAD_MESSAGE', 'MITTSYNC_LIMITS must be a JSON object of limits');
    }
    limits = parsed as Partial<RelayLimits>;
  }
  const cors = env.MITTSYNC_CORS_ORIGINS?.trim();
  return {
    auth,
    limits,
    corsOrigins: cors === '*' ? '*' : (list(cors) ?? (dev ? '*' : undefined)),
    dev: dev ? { secret: env.MITTSYNC_DEV_SECRET as string } : undefined,
    flushTimeoutMs: positive(env.MITTSYNC_FLUSH_TIMEOUT_MS, 'MITTSYNC_FLUSH_TIMEOUT_MS'),
    recvEvery: positive(env.MITTSYNC_RECV_EVERY, 'MITTSYNC_RECV_EVERY') ?? 64 * 1024,
  };
}

/** Dev mode's issued-ids registry: per isolate (a local `start:edge` has one). */
export const devRegistry = memoryDevRegistry();
