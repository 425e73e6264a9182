import type { SubscriptionPolicy } from './protocol';

/**
 * What the relay knows of one replica of a bucket: the relay keeps one record per replicaId
 * it has served, so tombstones can be collected once every live replica has passed them.
 */
export interface ReplicaRecord {
  replicaId: string;
  /** The policy of its latest subscription. */
  policy: SubscriptionPolicy;
  /** The replication spec of its latest subscription, as sent (opaque JSON), if any. */
  spec?: unknown;
  /**
   * The highest seq the replica reported durably stored (`ckpt`), or the checkpoint it last
   * resumed from: it may still need every tombstone with a greater seq.
   */
  acked: number;
  /** When the relay last heard from it (ms since the epoch): subscribe, `ckpt`, disconnect. */
  lastSeen: number;
  /**
   * Set once the replica stayed silent longer than the retention period: it no longer holds
   * tombstones back, and a resume that needs a purged one is answered `reset` (`retention`).
   */
  dropped?: boolean;
}

/** A replica record as the admin API shows it, with whether it is connected now. */
export interface ReplicaView extends ReplicaRecord {
  connected: boolean;
}

/** What {@link collectBound} decides from. */
export interface GcInput {
  head: number;
  /** Every tombstone with a seq at or below this was purged already. */
  gcUpTo: number;
  replicas: readonly ReplicaRecord[];
  /** ReplicaIds with a live connection to the bucket now (live whatever their lastSeen). */
  connected: ReadonlySet<string>;
  now: number;
  /** A replica silent longer than this is dropped from the set that holds tombstones. */
  retainMs: number;
  /** Optional hard cap: tombstones more than this many seqs behind the head go regardless. */
  capOps?: number;
}

/** What {@link collectBound} decided. */
export interface GcDecision {
  /** Purge every tombstone with `gcUpTo < seq <= upTo` (no purge when `upTo <= gcUpTo`). */
  upTo: number;
  /** Replicas to mark dropped now (silent past the retention period). */
  drop: string[];
}

/**
 * The distributed tombstone GC rule. A tombstone may go once every live replica has
 * acknowledged a checkpoint at or past its seq: none of them can ask for it again. A replica
 * is live while connected, or for `retainMs` after it was last seen; past that it is dropped
 * (and reset if it ever returns needing a purged tombstone). With no live replica at all
 * nothing is purged (but by the cap): a client that pages "changed since" without
 * subscribing still sees deletes, and the first replica to subscribe registers its need.
 */
export function collectBound(input: GcInput): GcDecision {
  const drop: string[] = [];
  let low = Number.POSITIVE_INFINITY;
  for (const r of input.replicas) {
    const live = input.connected.has(r.replicaId) || input.now - r.lastSeen <= input.retainMs;
    if (!live) {
      if (r.dropped !== true) drop.push(r.replicaId);
      continue;
    }
    if (r.acked < low) low = r.acked;
  }
  let upTo = low === Number.POSITIVE_INFINITY ? input.gcUpTo : Math.min(low, input.head);
  if (input.capOps !== undefined) upTo = Math.max(upTo, input.head - input.capOps);
  return { upTo: Math.max(upTo, input.gcUpTo), drop };
}

/**
 * Why a resume from `since` must restart as a join, from the tombstone side: only when a
 * tombstone it may need (a seq above its checkpoint) was actually purged. `horizon` is the
 * greatest seq of a purged tombstone. A dropped replica's reset says `retention`.
 */
export function resumeReset(
  since: number,
  horizon: number,
  record: ReplicaRecord | undefined,
): 'horizon' | 'retention' | undefined {
  if (since >= horizon) return undefined;
  return record?.dropped === true ? 'retention' : 'horizon';
}
