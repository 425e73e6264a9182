import {
  type BucketControl,
  isBucketName,
  isReplicaId,
  MittsyncError,
  patchControl,
  type ReplicaView,
} from '@mittsync/core';
import type { Context, Hono } from 'hono';
import type { Principal } from './auth';
import type { BucketSummary, Relay } from './relay';

export type { BucketSummary };

/** Where the admin API lives: `/v1/admin/...`. */
export const ADMIN_PREFIX = '/v1/admin';

/** One bucket in detail (`GET /v1/admin/buckets/<bucket>`). */
export interface BucketDetail extends BucketSummary {
  /** Greatest seq of a purged tombstone: resumes from before it reset. */
  horizon: number;
  /** Every tombstone at or below this seq has been purged. */
  gcUpTo: number;
  control: BucketControl;
  replicaList: ReplicaView[];
}

/** What the admin routes need from the app around them. */
export interface AdminRouteContext {
  relay: Relay;
  admit(c: Context): void;
  principal(c: Context): Promise<Principal>;
  /** A `/buckets/:bucket/...` request's bucket and token, which may read it. */
  reader(c: Context): Promise<{ who: Principal; bucket: string }>;
  fail(c: Context, e: unknown): Response;
  /** Forwarding mode (the edge Worker): per-bucket admin requests go to the bucket's host. */
  forward?: (bucket: string, req: Request) => Promise<Response>;
  /**
   * Lists buckets where the relay cannot enumerate its own storage (the edge Worker asks its
   * registry object, then each bucket's object).
   */
  listBuckets?: (req: Request, after: string | undefined, limit: number) => Promise<BucketSummary[]>;
}

const MAX_BODY = 64 * 1024;

/** Bucket names may hold `/`: admin paths carry them as one encoded segment. */
function bucketParam(c: Context): string {
  const raw = c.req.param('bucket') ?? '';
  let b: string;
  try {
    b = decodeURIComponent(raw);
  } catch {
    b = raw;
  }
  if (!isBucketName(b)) throw new MittsyncError('BAD_MESSAGE', 'not a bucket name (encode / as %2F)');
  return b;
}

/** A bucket's detail, from its resident host. */
export function bucketDetail(relay: Relay, bucket: string): BucketDetail {
  const host = relay.host(bucket);
  const m = host.state;
  const replicaList = host.replicas.list();
  return {
    bucket,
    epoch: m.epoch,
    head: m.head,
    ...host.sizes(),
    replicas: replicaList.length,
    horizon: m.horizon,
    gcUpTo: m.gcUpTo ?? 0,
    control: host.replicas.control,
    replicaList,
  };
}

/**
 * Installs the admin API (an admin-scoped token: claim `mittsync.admin: true`):
 *
 * - `GET  /v1/admin/buckets?after=&limit=`: buckets with their sizes and replica counts;
 * - `GET  /v1/admin/buckets/<bucket>`: one bucket, its control and every replica record;
 * - `GET  /v1/admin/buckets/<bucket>/replicas/<replicaId>`: one replica record;
 * - `PUT  /v1/admin/buckets/<bucket>/control`: patch replication in/out (`enabled`, `allow`, `deny`);
 * - `POST /v1/admin/buckets/<bucket>/reset`: a new epoch (every replica re-joins).
 *
 * `<bucket>` is one path segment (`encodeURIComponent`). Answers are JSON. Besides, for any
 * token that may read the bucket: `GET /v1/buckets/<bucket>/replicas` (`{ bucket, head, replicas }`).
 */
export function installAdminRoutes(app: Hono, ctx: AdminRouteContext): void {
  const { relay } = ctx;

  const admin = async (c: Context): Promise<Principal> => {
    ctx.admit(c);
    const who = await ctx.principal(c);
    if (who.admin !== true) throw new MittsyncError('FORBIDDEN', 'the admin API needs an admin-scoped token');
    return who;
  };

  app.get(`${ADMIN_PREFIX}/buckets`, async (c) => {
    try {
      await admin(c);
      const after = c.req.query('after');
      const limitRaw = c.req.query('limit') ?? '100';
      if (!/^\d{1,4}$/.test(limitRaw)) throw new MittsyncError('BAD_MESSAGE', 'limit must be 1-1000');
      const limit = Math.min(Math.max(Number(limitRaw), 1), 1000);
      if (after !== undefined && !isBucketName(after))
        throw new MittsyncError('BAD_MESSAGE', 'after must be a bucket name');
      let buckets: BucketSummary[];
      if (ctx.listBuckets !== undefined) buckets = await ctx.listBuckets(c.req.raw, after, limit);
      else buckets = relay.bucketSummaries(after, limit);
      const last = buckets[buckets.length - 1];
      return c.json({ buckets, next: buckets.length === limit && last !== undefined ? last.bucket : null });
    } catch (e) {
      return ctx.fail(c, e);
    }
  });

  /** A per-bucket route: forwarded to the bucket's host on the edge, served here otherwise. */
  const perBucket =
    (handle: (c: Context, bucket: string) => Promise<Response> | Response) => async (c: Context) => {
      try {
        await admin(c);
        const bucket = bucketParam(c);
        if (ctx.forward !== undefined) return await ctx.forward(bucket, c.req.raw);
        return await handle(c, bucket);
      } catch (e) {
        return ctx.fail(c, e);
      }
    };

  // Readers see where a bucket's replicas are (ids, policies, checkpoints): the demo's inspector.
  // Nothing a reader does not already see in ops' origins, plus their progress.
  app.get(`/v1/buckets/:bucket/replicas`, async (c) => {
    try {
      const { bucket } = await ctx.reader(c);
      if (ctx.forward !== undefined) return await ctx.forward(bucket, c.req.raw);
      const replicas = relay.host(bucket).replicas.list();
      return c.json({ bucket, head: relay.host(bucket).state.head, replicas });
    } catch (e) {
      return ctx.fail(c, e);
    }
  });

  app.get(
    `${ADMIN_PREFIX}/buckets/:bucket`,
    perBucket((c, bucket) => c.json(bucketDetail(relay, bucket))),
  );

  app.get(
    `${ADMIN_PREFIX}/buckets/:bucket/replicas/:replicaId`,
    perBucket((c, bucket) => {
      const id = c.req.param('replicaId');
      if (!isReplicaId(id)) throw new MittsyncError('BAD_MESSAGE', 'not a replicaId');
      const r = relay
        .host(bucket)
        .replicas.list()
        .find((x) => x.replicaId === id);
      if (r === undefined)
        return c.json({ type: 'error', code: 'BAD_MESSAGE', message: `no replica ${id} in ${bucket}` }, 404);
      return c.json({ bucket, ...r });
    }),
  );

  app.put(
    `${ADMIN_PREFIX}/buckets/:bucket/control`,
    perBucket(async (c, bucket) => {
      const text = await c.req.text();
      if (text.length > MAX_BODY) throw new MittsyncError('FRAME_TOO_LARGE', `body over ${MAX_BODY} bytes`);
      let patch: unknown;
      try {
        patch = JSON.parse(text);
      } catch (e) {
        throw new MittsyncError('BAD_MESSAGE', 'body must be JSON { out?, in? }', { cause: e });
      }
      const host = relay.host(bucket);
      const control = patchControl(host.replicas.control, patch);
      host.replicas.setControl(control);
      relay.log('info', 'bucket control changed', { bucket, control });
      return c.json({ bucket, control });
    }),
  );

  app.post(
    `${ADMIN_PREFIX}/buckets/:bucket/reset`,
    perBucket((c, bucket) => {
      const epoch = relay.host(bucket).resetEpoch();
      relay.log('warn', 'bucket reset to a new epoch', { bucket, epoch });
      return c.json({ bucket, epoch });
    }),
  );
}
