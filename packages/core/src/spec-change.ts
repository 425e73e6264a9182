import type { BucketState } from './bucket-state';
import { checksumOf } from './checksum';
import { MittsyncError } from './errors';
import type { Write } from './local-writes';
import {
  mergeSpans,
  outsideSpec,
  type ReplicationSpec,
  spansCover,
  specKey,
  specSpans,
  subtractSpans,
} from './spec';
import type { BucketMeta, ReplicaStorage } from './storage';

/**
 * Refuses local writes outside the bucket's spec at once (`OUTSIDE_SPEC`), before anything is
 * stored: the spec the relay applies when it said (a token's prefixes), else the bucket's own.
 */
export function checkInSpec(b: BucketState, writes: readonly Write[]): void {
  const spec = b.relaySpec ?? b.meta.spec;
  if (spec === undefined) return;
  for (const w of writes) {
    const problem = outsideSpec(
      spec,
      'delete' in w ? { key: w.key, kind: 'del' } : { key: w.key, kind: 'set', value: w.value },
    );
    if (problem !== undefined) throw problem;
  }
}

/** What a spec change needs next: nothing, a resume (downloading `meta.widen`) or a join. */
export type SpecChange = 'none' | 'resume' | 'rejoin';

/**
 * Changes the spec `b` is held with, in storage: narrowing drops the entries the new spec no
 * longer covers (and their part of the checksum); widening records the added spans in
 * `meta.widen`, which the next catch-up downloads in full while the rest resumes from the
 * checkpoint. Nothing the replica holds is downloaded again. A new projection changes every
 * value, so it re-joins (keeping pending writes). Fails with `POLICY_CONFLICT` when pending
 * writes lie outside the new spec.
 */
export async function changeSpec(
  storage: ReplicaStorage,
  b: BucketState,
  next: ReplicationSpec | undefined,
): Promise<SpecChange> {
  const prev = b.meta.spec;
  if (specKey(prev) === specKey(next)) return 'none';
  const stranded = b.outbox.find((op) => outsideSpec(next, op) !== undefined);
  if (stranded !== undefined) {
    throw new MittsyncError(
      'POLICY_CONFLICT',
      `bucket ${b.name} has a pending write to ${stranded.key.slice(0, 80)} outside the new spec: wait for it to be acknowledged`,
      { detail: { bucket: b.name, key: stranded.key } },
    );
  }
  const meta: BucketMeta = { ...b.meta };
  if (next === undefined) delete meta.spec;
  else meta.spec = next;
  const fieldsChanged = specKey({ fields: prev?.fields ?? [] }) !== specKey({ fields: next?.fields ?? [] });
  if (fieldsChanged || !b.meta.ready) {
    const joining: BucketMeta = { ...meta, ready: false, checkpoint: 0 };
    delete joining.widen;
    await storage.commit({ bucket: b.name, meta: joining });
    b.meta = joining;
    return 'rejoin';
  }
  const before = specSpans(prev);
  const after = specSpans(next);
  const dropped = subtractSpans(before, after);
  const added = subtractSpans(after, before);
  // Spans still to download from an earlier widening stay, where the new spec still covers them.
  const outside = subtractSpans([{ lo: '', hi: undefined }], after);
  meta.widen = mergeSpans([...subtractSpans(b.meta.widen ?? [], outside), ...added]);
  if (dropped.length > 0) {
    const all = await storage.scan(b.name, { includeDeleted: true });
    const kept = all.filter((e) => spansCover(after, e.key));
    meta.sum = checksumOf(kept);
    await storage.resetBucket(
      b.name,
      kept.map((e) => e.key),
      meta,
    );
  } else await storage.commit({ bucket: b.name, meta });
  b.meta = meta;
  return 'resume';
}
