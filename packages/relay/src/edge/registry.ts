import type { SqlDriver } from '@mittsync/core';
import type { BucketSummary } from '../relay';
import type { DurableObjectNamespaceLike } from './workers-api';

/**
 * Workers cannot enumerate Durable Objects, so the edge relay keeps a registry: one more
 * object of the bucket class, named {@link REGISTRY_NAME} (not a valid bucket name, so no
 * bucket ever shares it), holding the name of every bucket object. A bucket object adds its
 * name the first time it serves its bucket; the Worker lists the registry for
 * `GET /v1/admin/buckets`, then asks each listed object for its sizes. Buckets whose objects
 * were created before the registry existed are missing from it until they next start
 * serving with an empty name record (never, for those): list them by name instead.
 */
export const REGISTRY_NAME = '__registry';

/** Internal paths of the registry object (only reachable through its stub, never from clients). */
export const REGISTRY_PATH = '/__registry/';

const TABLE = 'CREATE TABLE IF NOT EXISTS registry (name TEXT PRIMARY KEY) WITHOUT ROWID';

/** Serves the registry object's requests: `POST add` (body: a bucket name), `GET list?after=&limit=`. */
export async function serveRegistry(sql: SqlDriver, req: Request): Promise<Response> {
  sql.exec(TABLE);
  const url = new URL(req.url);
  const op = url.pathname.slice(REGISTRY_PATH.length);
  if (op === 'add' && req.method === 'POST') {
    const name = (await req.text()).slice(0, 256);
    sql.exec('INSERT INTO registry (name) VALUES (?) ON CONFLICT (name) DO NOTHING', name);
    return new Response(null, { status: 204 });
  }
  if (op === 'list') {
    const limit = Math.min(Number(url.searchParams.get('limit') ?? '100') || 100, 1000);
    const rows = sql.exec<{ name: string }>(
      'SELECT name FROM registry WHERE name > ? ORDER BY name LIMIT ?',
      url.searchParams.get('after') ?? '',
      limit,
    );
    return Response.json(rows.map((r) => r.name));
  }
  return new Response(null, { status: 404 });
}

function registryStub(ns: DurableObjectNamespaceLike): { fetch(req: Request): Promise<Response> } {
  return ns.get(ns.idFromName(REGISTRY_NAME));
}

/** Adds `bucket` to the registry (a bucket object serving its bucket for the first time). */
export async function registerBucket(ns: DurableObjectNamespaceLike, bucket: string): Promise<void> {
  const res = await registryStub(ns).fetch(
    new Request(`https://registry${REGISTRY_PATH}add`, { method: 'POST', body: bucket }),
  );
  if (!res.ok) throw new Error(`bucket registry answered ${res.status}`);
}

/**
 * Lists buckets for the admin API on the edge: names from the registry, then each bucket's
 * sizes from its own object (the admin request's token goes along and is checked there).
 */
export async function listEdgeBuckets(
  ns: DurableObjectNamespaceLike,
  req: Request,
  after: string | undefined,
  limit: number,
): Promise<BucketSummary[]> {
  const q = new URLSearchParams({ limit: String(limit), ...(after === undefined ? {} : { after }) });
  const names = (await (
    await registryStub(ns).fetch(new Request(`https://registry${REGISTRY_PATH}list?${q}`))
  ).json()) as string[];
  const origin = new URL(req.url).origin;
  const auth = req.headers.get('authorization') ?? '';
  return Promise.all(
    names.map(async (name) => {
      const res = await ns.get(ns.idFromName(name)).fetch(
        new Request(`${origin}/v1/admin/buckets/${encodeURIComponent(name)}`, {
          headers: { authorization: auth, accept: 'application/json' },
        }),
      );
      const d = (await res.json()) as BucketSummary;
      return {
        bucket: name,
        epoch: d.epoch,
        head: d.head,
        entries: d.entries,
        tombstones: d.tombstones,
        replicas: d.replicas,
      };
    }),
  );
}
