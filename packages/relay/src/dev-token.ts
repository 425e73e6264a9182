import { isReplicaId, MittsyncError } from '@mittsync/core';
import { randomId } from '@mittsync/core/model';
import type { Context, Hono } from 'hono';
import { cors } from 'hono/cors';
import { compactVerify } from 'jose';
import { bearerToken, principalFromClaims, signToken } from './auth';

/** Where dev mode hands out tokens. */
export const DEV_TOKEN_PATH = '/v1/dev/token';

/** How long a dev token lives. */
const DEV_TOKEN_TTL_S = 24 * 3600;

/**
 * The replica ids a dev relay has issued tokens for. A Node relay keeps them next to its
 * database, so a replica that synced before a restart still cannot be claimed by someone else.
 */
export interface DevReplicaRegistry {
  has(replicaId: string): boolean;
  add(replicaId: string): void;
}

/**
 * Dev mode: `GET /v1/dev/token` hands out read/write `*` tokens, but only to pages of the
 * relay itself (or of a configured dev server) and only for the caller's own replica.
 */
export interface DevModeOptions {
  /** Signs dev tokens. Never the production secret: dev tokens must not verify in production. */
  secret: string | Uint8Array;
  /**
   * Whether a `Host` header names this relay: its loopback names with its port (the runtime
   * knows the port only once it listens). A request for any other host is refused, so a page
   * that reaches the relay through DNS rebinding (`evil.example:8787` resolving to 127.0.0.1)
   * gets nothing.
   */
  isOwnHost: (host: string) => boolean;
  /**
   * Origins (`http://localhost:5173`) of dev servers whose pages may ask for tokens: their
   * `Origin` and their `Host` (a proxy that keeps it) are accepted, and they get CORS headers
   * for this route. Default none.
   */
  origins?: readonly string[];
  /** Ids issued so far; a caller may name one only with a token already issued for it. */
  registry: DevReplicaRegistry;
}

/** The issued-ids registry of a relay that forgets them when it stops. */
export function memoryDevRegistry(): DevReplicaRegistry {
  const ids = new Set<string>();
  return { has: (id) => ids.has(id), add: (id) => void ids.add(id) };
}

const forbidden = (message: string) => new MittsyncError('FORBIDDEN', message);

/** The `Host` of a dev origin (`http://localhost:5173` -> `localhost:5173`), if it is a URL. */
function hostOf(origin: string): string | undefined {
  try {
    return new URL(origin).host;
  } catch {
    return undefined;
  }
}

/**
 * Refuses a dev token request that does not come from a page of this relay or of a configured
 * dev server: a foreign `Host` (DNS rebinding), a foreign `Origin`, or a cross-site fetch
 * without one.
 */
function checkCaller(c: Context, dev: DevModeOptions): void {
  const origins = dev.origins ?? [];
  const host = (c.req.header('host') ?? '').toLowerCase();
  const devHosts = origins.map(hostOf);
  if (!dev.isOwnHost(host) && !devHosts.includes(host)) {
    throw forbidden(
      `dev tokens are only handed out to this relay's loopback address, not to Host ${host || '(none)'} (start the relay with --dev-origin <origin> for a dev server that proxies it)`,
    );
  }
  const origin = c.req.header('origin');
  if (origin !== undefined) {
    const own = dev.isOwnHost(hostOf(origin) ?? '') && origin.startsWith('http://');
    if (!own && !origins.includes(origin)) {
      throw forbidden(
        `dev tokens are not handed out to pages of ${origin} (start the relay with --dev-origin ${origin} if it is your dev server)`,
      );
    }
    return;
  }
  // A cross-site request always carries Origin in today's browsers; this covers the others.
  const site = c.req.header('sec-fetch-site');
  if (site === 'cross-site' || site === 'same-site') {
    throw forbidden('dev tokens are not handed out to other sites');
  }
}

/**
 * Installs dev mode's `GET /v1/dev/token` on `app`.
 *
 * Without `sub` it names a fresh replica (`d` + 15 random characters). With `sub` it renews the
 * caller's own replica: allowed when the request carries (`Authorization: Bearer`) a dev token
 * this relay signed for that id, expired or not, or when the relay has never issued a token
 * for that id (a replica that made up its own id, as the browser peer does on first run).
 * Either way nobody obtains a token for a replica someone else already holds.
 */
/** The `prefixes` query parameter of a dev token request, checked as a token's claim would be. */
function devPrefixes(raw: string | undefined): Record<string, string[]> | undefined {
  if (raw === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = raw.length > 8192 ? undefined : JSON.parse(raw);
  } catch {
    parsed = undefined;
  }
  try {
    principalFromClaims({ sub: 'check', exp: 1, mittsync: { read: [], write: [], prefixes: parsed } });
  } catch (e) {
    throw new MittsyncError('BAD_MESSAGE', `prefixes: ${(e as Error).message}`);
  }
  if (parsed === undefined)
    throw new MittsyncError('BAD_MESSAGE', 'prefixes must be JSON { bucketPattern: [prefix] }');
  return parsed as Record<string, string[]>;
}

export function installDevTokenRoute(
  app: Hono,
  dev: DevModeOptions,
  random: () => number,
  fail: (c: Context, e: unknown) => Response,
): void {
  const origins = dev.origins ?? [];
  const key = typeof dev.secret === 'string' ? new TextEncoder().encode(dev.secret) : dev.secret;
  if (origins.length > 0) {
    // Only the configured dev servers, whatever --cors says: `*` here would hand tokens to any page.
    app.use(
      DEV_TOKEN_PATH,
      cors({ origin: (o) => (origins.includes(o) ? o : null), allowHeaders: ['authorization'], maxAge: 600 }),
    );
  }

  /** The subject of `token` if this relay signed it (expiry is not checked: it proves possession). */
  const provenSubject = async (token: string): Promise<string | undefined> => {
    try {
      const { payload } = await compactVerify(token, key, { algorithms: ['HS256'] });
      const claims = JSON.parse(new TextDecoder().decode(payload)) as { sub?: unknown };
      return typeof claims.sub === 'string' ? claims.sub : undefined;
    } catch {
      return undefined;
    }
  };

  app.get(DEV_TOKEN_PATH, async (c) => {
    try {
      checkCaller(c, dev);
      const asked = c.req.query('sub');
      let sub: string;
      if (asked === undefined) {
        do sub = `d${randomId(random, 15)}`;
        while (dev.registry.has(sub));
      } else {
        if (!isReplicaId(asked))
          throw new MittsyncError('BAD_MESSAGE', 'sub must be 1-64 chars of [A-Za-z0-9_-]');
        const proof = bearerToken(c.req.header('authorization'));
        const proven = proof === undefined ? undefined : await provenSubject(proof);
        if (proven !== asked && dev.registry.has(asked)) {
          throw forbidden(
            `replica ${asked} already has dev tokens: renew with one of them (Authorization: Bearer), or ask without sub for a new replica id`,
          );
        }
        sub = asked;
      }
      // `prefixes` (JSON, { bucketPattern: [keyPrefix, ...] }): a row-scoped token, to try
      // prefix-scoped access (see ScopeClaim.prefixes).
      const prefixes = devPrefixes(c.req.query('prefixes'));
      dev.registry.add(sub);
      const token = await signToken(dev.secret, {
        sub,
        read: ['*'],
        write: ['*'],
        ttlS: DEV_TOKEN_TTL_S,
        ...(prefixes === undefined ? {} : { prefixes }),
      });
      return c.json({ token, sub, expiresAt: Date.now() + DEV_TOKEN_TTL_S * 1000, dev: true }, 200, {
        'cache-control': 'no-store',
      });
    } catch (e) {
      return fail(c, e);
    }
  });
}
