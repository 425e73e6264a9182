/**
 * A `getToken` for a relay started with `--dev`: asks its `/v1/dev/token` endpoint for a
 * read/write token bound to this replica. For demos and tests only (the relay says so loudly).
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
    const res = await fetch(`${base}/v1/dev/token?sub=${encodeURIComponent(replicaId)}`);
    if (!res.ok) throw new Error(`dev token request failed with HTTP ${res.status}`);
    const body = (await res.json()) as { token?: unknown };
    if (typeof body.token !== 'string') throw new Error('dev token response has no token');
    return body.token;
  };
}
