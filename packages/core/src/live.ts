import type { BucketState, CatchUp } from './bucket-state';
import { checksumEquals, checksumReplace } from './checksum';
import { MittsyncError } from './errors';
import { keep, knownVersions, OLDER } from './fresh-join';
import type { Mitt, MittBounds } from './mitt';
import { type Entry, opToEntry, type SeqOp, type Version, wins } from './model';
import type { DeliverMsg } from './protocol';
import { specCovers } from './spec';
import type { BucketMeta } from './storage';
import type { SyncContext } from './sync-context';

/** What the live stream needs from its owner and from catch-up. */
export interface LiveContext
  extends Pick<
    SyncContext,
    'env' | 'storage' | 'clock' | 'emitChange' | 'emitApplying' | 'emitStatus' | 'fail' | 'syncTask'
  > {
  /** Subscribes again (a gap in the stream persisted or overflowed; a resume recovers it). */
  resubscribe(b: BucketState): void;
  /** Lets the catch-up in progress finish if the stream now covers its cut. */
  tryFinish(b: BucketState, cu: CatchUp): void;
  /** Forgets the checkpoint and re-joins (the stored state diverged from the relay's). */
  rejoin(b: BucketState): void;
  /** A ready bucket's checkpoint was durably moved (reported to the relay as `ckpt`). */
  checkpointed?(b: BucketState): void;
}

export interface LiveOptions {
  /** `maxAhead`: ops kept before `subscribed`; `maxKept`: see {@link MittBounds}. */
  bounds: Pick<MittBounds, 'maxAhead' | 'maxKept'>;
  /** Resume when a seq gap in the live stream persists this long. */
  gapTimeoutMs: number;
}

/**
 * The live op stream of every bucket: takes delivered ops into the bucket's mitt, watches for
 * gaps, applies ops to storage (at once when ready; at the end, or when the mitt spills, while
 * catching up) and checks the stored checksum against the relay's whenever both must agree.
 */
export class LiveStream {
  constructor(
    private readonly ctx: LiveContext,
    private readonly opts: LiveOptions,
  ) {}

  /** A `deliver` frame. */
  deliver(b: BucketState, msg: DeliverMsg): void {
    const ctx = this.ctx;
    const mitt = b.mitt;
    if (mitt === null || !b.subscribedOk) {
      // The stream can overtake the `subscribed` answer: keep those ops for the mitt (bounded;
      // past the bound they are dropped and gap detection recovers them).
      if (b.early.length < this.opts.bounds.maxAhead) b.early.push(msg);
      return;
    }
    let fresh = 0;
    const spec = b.meta.spec;
    for (const op of msg.ops) {
      // Frames of a subscription before a spec change may still bring keys it dropped.
      if (spec !== undefined && !specCovers(spec, op.key)) continue;
      if (mitt.add(op, true)) fresh++;
    }
    const first = msg.ops[0];
    const lastOp = msg.ops[msg.ops.length - 1];
    const span =
      msg.span ??
      (first === undefined || lastOp === undefined ? undefined : ([first.seq, lastOp.seq] as const));
    if (span !== undefined && mitt.cover(span[0], span[1])) fresh++;
    const lastSeq = span?.[1];
    // (Frames of a subscription before a spec change all have seqs below this one's `from`.)
    if (lastSeq !== undefined && (b.sumAt === null || lastSeq > b.sumAt.seq))
      b.sumAt = { seq: lastSeq, sum: msg.sum };
    if (mitt.gapOverflow) {
      ctx.resubscribe(b);
      return;
    }
    if (mitt.hasGap) {
      if (b.gapTimer === undefined) {
        b.gapTimer = ctx.env.setTimeout(() => {
          b.gapTimer = undefined;
          if (b.mitt === mitt && mitt.hasGap) ctx.resubscribe(b);
        }, this.opts.gapTimeoutMs);
      }
    } else if (b.gapTimer !== undefined) {
      ctx.env.clearTimeout(b.gapTimer);
      b.gapTimer = undefined;
    }
    if (fresh === 0) return;
    const cu = b.catchUp;
    if (cu !== null) {
      if (mitt.isOverBound()) {
        // Spill: apply held ops to storage now (LWW makes the order irrelevant); the
        // download then merges against their versions, kept in `cu.kept`, or against
        // storage once a join is no longer fresh.
        const subId = b.subId;
        ctx.syncTask(b, async () => {
          if (b.subId === subId) await this.apply(b, mitt.spill(), undefined);
        });
      }
      ctx.tryFinish(b, cu);
      return;
    }
    this.applyHeld(b, mitt);
  }

  /**
   * Applies the ops a ready bucket's mitt holds, moves the checkpoint with them and reports
   * it: a replica that only receives hears of its new checkpoint from nothing else.
   */
  applyHeld(b: BucketState, mitt: Mitt): void {
    // Seqs a spec left out move the checkpoint too (without them it would lag the relay's head).
    if (mitt.heldCount === 0 && mitt.upTo <= b.meta.checkpoint) return;
    const ctx = this.ctx;
    const subId = b.subId;
    ctx.syncTask(b, async () => {
      if (b.subId !== subId || b.mitt !== mitt) return;
      if (mitt.heldCount === 0 && mitt.upTo <= b.meta.checkpoint) return;
      const upTo = mitt.upTo;
      await this.apply(b, mitt.spill(), { checkpoint: upTo });
      this.verify(b);
      ctx.emitStatus();
    });
  }

  /** LWW-applies live ops to storage, with an optional meta change in the same commit. */
  async apply(b: BucketState, ops: readonly SeqOp[], patch: Partial<BucketMeta> | undefined): Promise<void> {
    const ctx = this.ctx;
    const newest = new Map<string, SeqOp>();
    for (const op of ops) {
      const cur = newest.get(op.key);
      if (cur === undefined || op.hlc > cur.hlc) newest.set(op.key, op);
    }
    const keys = [...newest.keys()];
    const known = knownVersions(b, ops);
    const toRead = known === undefined ? keys : keys.filter((k) => !known.has(k));
    const read = toRead.length === 0 ? [] : await ctx.storage.getEntries(b.name, toRead);
    const stored = new Map<string, Version | undefined>(toRead.map((k, i) => [k, read[i]]));
    const meta: BucketMeta = { ...b.meta, ...patch, sum: { ...b.meta.sum } };
    const puts: Entry[] = [];
    let maxHlc = '';
    keys.forEach((k) => {
      const op = newest.get(k) as SeqOp;
      if (op.hlc > maxHlc) maxHlc = op.hlc;
      const cur = known?.has(k) ? known.get(k) : stored.get(k);
      if (cur === OLDER) return;
      if (!wins(op.hlc, cur?.hlc)) return;
      const e = opToEntry(op, op.seq);
      checksumReplace(meta.sum, k, cur, e);
      puts.push(e);
    });
    if (maxHlc !== '') ctx.clock.observe(maxHlc);
    const commit = ctx.storage.commit({ bucket: b.name, puts, meta, clock: ctx.clock.last() });
    // Views may show what won now, a storage round trip sooner; the checkpoint still moves
    // only with this commit, and reads wait for it (see `Replica.onApplying`).
    if (puts.length > 0) ctx.emitApplying(b.name, puts, commit);
    await commit;
    b.meta = meta;
    if (meta.ready && patch?.checkpoint !== undefined) ctx.checkpointed?.(b);
    if (b.catchUp?.fresh) keep(b.catchUp, puts, this.opts.bounds.maxKept);
    ctx.emitChange(b.name, puts, 'remote');
  }

  /**
   * Compares the stored checksum with the relay's when the stored state must equal the
   * relay's at the checkpoint: nothing of ours pending, no op past a gap applied, no
   * downloaded entry newer than the checkpoint. A mismatch means divergence: re-join.
   */
  verify(b: BucketState): void {
    const c = b.meta.checkpoint;
    const at = b.sumAt;
    if (at === null || at.seq !== c || b.phase !== 'ready' || b.outbox.length > 0) return;
    if (
      b.mitt === null ||
      b.mitt.hasGap ||
      b.mitt.heldCount > 0 ||
      c < b.localAheadSeq ||
      c < b.dlMaxSeqCheck
    )
      return;
    if (checksumEquals(at.sum, b.meta.sum)) {
      b.verified++;
      return;
    }
    this.ctx.fail(
      b,
      new MittsyncError(
        'CHECKSUM_MISMATCH',
        `bucket ${b.name} differs from the relay at seq ${c}; re-joining`,
      ),
    );
    this.ctx.rejoin(b);
  }
}
