import { isErrorCode, MittsyncError } from '@mittsync/core';

/** Where a page keeps the last dev token of each replica, to renew it after a reload. */
const STORE_PREFIX = 'mittsync-dev-token:';

function storage(): Storage | undefined {
  try {
    return (globalThis as { localStorage?: Storage }).localStorage;
  } catch {
    return undefined;
  }
}

/**
 * A `getToken` for a relay started with `--dev`: asks its `/v1/dev/token` endpoint for a
 * read/write token bound to this replica. For demos and tests only (the relay says so loudly).
 *
 * A dev relay hands a replica's id out once: to renew it, the caller shows a token it got for
 * that id before. This keeps the last one per replica (in memory, and in `localStorage` where
 * there is one, so a reloaded page still proves it is that replica).
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
export function devToken(relay: string): (ctx: { replicaId: string }) => Promise<string> {
  const u = new URL(relay);
  if (u.protocol === 'ws:') u.protocol = 'http:';
  else if (u.protocol === 'wss:') u.protocol = 'https:';
  const base = u.origin;
  const held = new Map<string, string>();
  const storeKey = (replicaId: string) => `${STORE_PREFIX}${base} ${replicaId}`;
  return async ({ replicaId }) => {
    let proof = held.get(replicaId);
    if (proof === undefined) {
      try {
        proof = storage()?.getItem(storeKey(replicaId)) ?? undefined;
      } catch {
        // Storage denied (privacy settings): the relay will only know this replica by memory.
      }
    }
    let res: Response;
    try {
      res = await fetch(
        `${base}/v1/dev/token?sub=${encodeURIComponent(replicaId)}`,
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
    try {
      storage()?.setItem(storeKey(replicaId), body.token);
    } catch {
      // As above: kept in memory only.
    }
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
