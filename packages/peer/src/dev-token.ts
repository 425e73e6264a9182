import { isErrorCode, MittsyncError } from '@mittsync/core';
import { type IDBPDatabase, openDB } from 'idb';

/**
 * Where a page keeps the last dev token of each replica, to renew it after a reload or a crash:
 * IndexedDB, beside the replica's own identity. Not `localStorage`: Chromium writes that to disk
 * lazily, so a browser killed soon after start lost it while the replica (in IndexedDB) survived,
 * and the relay then refused the replica its own id.
 */
const TOKEN_DB = 'mittsync-dev-tokens';
const TOKENS = 'tokens';
let tokenDb: Promise<IDBPDatabase | undefined> | undefined;

function openTokenDb(): Promise<IDBPDatabase | undefined> {
  tokenDb ??= (async () => {
    if ((globalThis as { indexedDB?: unknown }).indexedDB === undefined) return undefined;
    try {
      return await openDB(TOKEN_DB, 1, { upgrade: (db) => void db.createObjectStore(TOKENS) });
    } catch {
      return undefined; // Storage denied (privacy settings): tokens are held in memory only.
    }
  })();
  return tokenDb;
}

async function loadToken(key: string): Promise<string | undefined> {
  try {
    const v: unknown = await (await openTokenDb())?.get(TOKENS, key);
    return typeof v === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

async function saveToken(key: string, token: string): Promise<void> {
  try {
    await (await openTokenDb())?.put(TOKENS, token, key);
  } catch {
    // As above: kept in memory only.
  }
}

/**
 * A `getToken` for a relay started with `--dev`: asks its `/v1/dev/token` endpoint for a
 * read/write token bound to this replica. For demos and tests only (the relay says so loudly).
 *
 * A dev relay hands a replica's id out once: to renew it, the caller shows a token it got for
 * that id before. This keeps the last one per replica (in memory, and in IndexedDB where there
 * is one, so a reloaded or restarted page still proves it is that replica).
 *
 * Fails with `UNAUTHENTICATED` when no token can be had (the relay is unreachable or not in dev
 * mode), with the relay's own code when it refuses the request (`RATE_LIMITED`, `FORBIDDEN` for
 * a page the relay does not serve or a replica id another caller holds...), and with
 * `BAD_MESSAGE` when its answer holds no token.
 *
 * @example
 * ```ts
 * const client = createClient({ relay, getToken: devToken(relay) });
 * ```
 */
export function devToken(
  relay: string,
  opts: {
    /**
     * Row-level scopes: bucket pattern -> key prefixes the token allows in the buckets it
     * matches (`{ orders: ['user-42/'] }`); default: every key.
     */
    prefixes?: Record<string, string[]>;
  } = {},
): (ctx: { replicaId: string }) => Promise<string> {
  const scoped =
    opts.prefixes === undefined ? '' : `&prefixes=${encodeURIComponent(JSON.stringify(opts.prefixes))}`;
  const u = new URL(relay);
  if (u.protocol === 'ws:') u.protocol = 'http:';
  else if (u.protocol === 'wss:') u.protocol = 'https:';
  const base = u.origin;
  const held = new Map<string, string>();
  // Opened now, while the worker starts, not when the first token is asked for.
  void openTokenDb();
  const storeKey = (replicaId: string) => `${base} ${replicaId}`;
  return async ({ replicaId }) => {
    const proof = held.get(replicaId) ?? (await loadToken(storeKey(replicaId)));
    let res: Response;
    try {
      res = await fetch(
        `${base}/v1/dev/token?sub=${encodeURIComponent(replicaId)}${scoped}`,
        proof === undefined ? {} : { headers: { authorization: `Bearer ${proof}` } },
      );
    } catch (cause) {
      throw new MittsyncError(
        'UNAUTHENTICATED',
        `dev token request to ${base} failed: is the relay running?`,
        {
          cause,
        },
      );
    }
    if (!res.ok) throw await refused(res, base);
    const body = (await res.json().catch(() => undefined)) as { token?: unknown } | undefined;
    if (typeof body?.token !== 'string')
      throw new MittsyncError('BAD_MESSAGE', 'dev token response has no token');
    held.set(replicaId, body.token);
    // Kept for the next session; this one has it in memory and need not wait for the write.
    void saveToken(storeKey(replicaId), body.token);
    return body.token;
  };
}

/** The error for a dev token request the relay answered with `res` (not 2xx). */
async function refused(res: Response, base: string): Promise<MittsyncError> {
  const detail = { status: res.status };
  // Without --dev the route does not exist.
  if (res.status === 404) {
    return new MittsyncError(
      'UNAUTHENTICATED',
      `dev token request failed with HTTP 404: the relay at ${base} hands out dev tokens only when started with --dev`,
      { detail },
    );
  }
  const body = (await res.json().catch(() => undefined)) as { code?: unknown; message?: unknown } | undefined;
  const code = isErrorCode(body?.code) ? body.code : 'UNAUTHENTICATED';
  const why = typeof body?.message === 'string' ? `: ${body.message}` : '';
  return new MittsyncError(code, `dev token request failed with HTTP ${res.status}${why}`, { detail });
}
