import { isErrorCode, MittsyncError } from '@mittsync/core';

/**
 * A `getToken` for a relay started with `--dev`: asks its `/v1/dev/token` endpoint for a
 * read/write token bound to this replica. For demos and tests only (the relay says so loudly).
 * Fails with `UNAUTHENTICATED` when no token can be had (the relay is unreachable or not in dev
 * mode), with the relay's own code when it refuses the request (`RATE_LIMITED`...), and with
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
  return async ({ replicaId }) => {
    let res: Response;
    try {
      res = await fetch(`${base}/v1/dev/token?sub=${encodeURIComponent(replicaId)}`);
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
