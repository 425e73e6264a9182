import type { BucketState } from './bucket-state';
import { MittsyncError, toMittsyncError } from './errors';
import type { Op } from './model';
import type { AckMsg, RejectedOp, WireLimits } from './protocol';
import { type BucketMeta, policyOf } from './storage';
import type { SyncContext } from './sync-context';

/** What the outbox needs from its owner. */
export interface OutboxContext
  extends Pick<SyncContext, 'env' | 'storage' | 'send' | 'isOpen' | 'fail' | 'emitStatus' | 'serial'> {
  /** The relay's limits from `welcome` (a push frame carries at most `maxOpsPerFrame` ops). */
  limits(): WireLimits;
  /** Re-joins the bucket, keeping pending writes (the relay refused some of them). */
  rejoin(b: BucketState): void;
}

export interface OutboxOptions {
  /** Ops per push frame. */
  pushBatch: number;
  /** Unacknowledged ops in flight before waiting for acks. */
  pushWindow: number;
  /** Re-send unacknowledged ops after this long without an ack. */
  ackTimeoutMs: number;
}

/** Error codes with which the relay refuses a whole push frame. */
const REFUSED_PUSH: ReadonlySet<string> = new Set([
  'FORBIDDEN',
  'TOO_MANY_OPS',
  'KEY_TOO_LARGE',
  'VALUE_TOO_LARGE',
  'FRAME_TOO_LARGE',
  'ORIGIN_MISMATCH',
  'BAD_MESSAGE',
  'READ_ONLY',
  'REPLICATION_REFUSED',
]);

/**
 * After an administrator refused replication in (`REPLICATION_REFUSED`), pushing is tried
 * again this often while subscribed: switching `in` back on needs no reconnect.
 */
export const REFUSED_RETRY_MS = 30_000;

/**
 * The push side of every bucket: sends the unacknowledged local ops (`BucketState.outbox`, in
 * originSeq order) within a window, re-sends what an ack never came for, drops what the relay
 * acknowledged (settling `relay`-level waiters) or refused, answers state-flush markers with
 * the transmission count, and keeps originSeqs matching the relay's reception counter across
 * lost acks, restores and epoch changes. Pushing a bucket waits for its subscription
 * (`hold` / `release`), so the relay has reported its counter first.
 */
export class Outbox {
  /** Per bucket, the greatest refusal an ack told of without listing it (re-joined for). */
  private readonly unexplained = new WeakMap<BucketState, number>();

  constructor(
    private readonly ctx: OutboxContext,
    private readonly opts: OutboxOptions,
  ) {}

  /** Stops pushing `b` until {@link release}; what was sent unacknowledged is sent again then. */
  hold(b: BucketState): void {
    b.canPush = false;
    b.sentUpTo = b.ackedUpTo;
  }

  /** Starts pushing `b` (its subscription is confirmed and the outbox reconciled). */
  release(b: BucketState): void {
    b.canPush = true;
    this.pump(b);
  }

  /**
   * Sends unsent outbox ops, in order, within the window. A `copy`'s outbox holds its fork
   * writes: they never leave the replica.
   */
  pump(b: BucketState): void {
    const { ctx, opts } = this;
    if (!b.canPush || !ctx.isOpen() || policyOf(b.meta) === 'copy') return;
    const first = b.outbox[0];
    if (first === undefined) return;
    const max = Math.min(opts.pushBatch, ctx.limits().maxOpsPerFrame);
    while (b.sentUpTo - b.ackedUpTo < opts.pushWindow) {
      const start = b.sentUpTo + 1 - first.originSeq;
      if (start >= b.outbox.length) break;
      const ops = b.outbox.slice(Math.max(0, start), Math.max(0, start) + max);
      if (ops.length === 0) break;
      ctx.send({ type: 'push', bucket: b.name, ops });
      b.sentUpTo = (ops[ops.length - 1] as Op).originSeq;
    }
    if (b.ackTimer === undefined && b.sentUpTo > b.ackedUpTo) {
      const acked = b.ackedUpTo;
      b.ackTimer = ctx.env.setTimeout(() => {
        b.ackTimer = undefined;
        if (b.ackedUpTo === acked && b.sentUpTo > acked) {
          // No progress: the frame or its ack was lost. Go back and resend.
          b.sentUpTo = b.ackedUpTo;
        }
        this.pump(b);
      }, opts.ackTimeoutMs);
    }
  }

  /** Resolves once the relay acknowledged op `originSeq` (rejects if it refused it). */
  whenAcknowledged(b: BucketState, originSeq: number): Promise<void> {
    if (originSeq <= b.ackedUpTo) return Promise.resolve();
    return new Promise((resolve, reject) => b.waiters.set(originSeq, { resolve, reject }));
  }

  /** Rejects every `relay`-level waiter of `b` (the replica is closing). */
  rejectWaiters(b: BucketState, err: MittsyncError): void {
    for (const w of b.waiters.values()) w.reject(err);
    b.waiters.clear();
  }

  /** A state flush marker: push what is unsent, then report the last originSeq issued. */
  answerMarker(b: BucketState, flushId: string): void {
    void this.ctx.serial(async () => {
      this.pump(b);
      this.ctx.send({ type: 'markerReply', bucket: b.name, flushId, sent: b.meta.nextOriginSeq - 1 });
    });
  }

  /**
   * An error frame about `b` without a `reqId`. If it refuses a push frame outright (no scope,
   * over a limit), the ops in flight will never be acknowledged as they are: settle their
   * `relay` waiters with the error instead of leaving them hanging, and stop pushing this
   * bucket until the next subscription (they stay in the outbox: a new token or configuration
   * may let them through).
   */
  onError(b: BucketState, err: MittsyncError): void {
    if (!REFUSED_PUSH.has(err.code)) return;
    for (const [seq, w] of b.waiters) {
      if (seq > b.sentUpTo) continue;
      b.waiters.delete(seq);
      w.reject(err);
    }
    b.canPush = false;
    this.ctx.env.clearTimeout(b.ackTimer);
    b.ackTimer = undefined;
    if (err.code === 'REPLICATION_REFUSED') {
      this.ctx.env.setTimeout(() => {
        // Still refused, the next push gets the same error and lands here again.
        if (b.canPush || !b.subscribedOk || !this.ctx.isOpen()) return;
        b.canPush = true;
        b.sentUpTo = b.ackedUpTo;
        this.pump(b);
      }, REFUSED_RETRY_MS);
    }
  }

  onAck(b: BucketState, msg: AckMsg): void {
    if (msg.seq !== undefined && msg.seq > b.localAheadSeq) b.localAheadSeq = msg.seq;
    const rejected = new Map((msg.rejected ?? []).map((r) => [r.originSeq, r]));
    const top = msg.refusedUpTo ?? 0;
    if (top > (b.meta.refusedUpTo ?? 0) && !rejected.has(top)) {
      // The relay refused an op of ours whose ack has not come (it is late, or was lost): take
      // nothing from this ack, which could settle that op as accepted. The re-join's
      // `subscribed` says which ops were refused; until it ends, a crash re-joins again.
      if (top > (this.unexplained.get(b) ?? 0)) {
        this.unexplained.set(b, top);
        void this.ctx.serial(() => this.storeRefusal(b));
        this.ctx.rejoin(b);
      }
      return;
    }
    if (msg.upTo > b.ackedUpTo) {
      void this.ctx.serial(() => this.acknowledge(b, msg.upTo, rejected));
    } else if (rejected.size > 0) {
      // A later ack overtook this one (a relay that resends frames, or the simulator): the ops
      // are acknowledged already, but the refusal must still be stored, or a crash before the
      // re-join ends would resume with the refused values (simulator seeds 6645 and 6938).
      void this.ctx.serial(() => this.storeRefusal(b));
    }
    if (msg.gap) b.sentUpTo = Math.max(b.ackedUpTo, msg.upTo);
    if (b.sentUpTo < msg.upTo) b.sentUpTo = msg.upTo;
    if (rejected.size > 0) {
      // The relay refused some of our writes; our stored state has them, the relay's not.
      // Re-join to take the relay's state (pending writes are kept).
      noteRefused(b, rejected.keys());
      this.ctx.rejoin(b);
      return;
    }
    this.pump(b);
  }

  /**
   * Makes the outbox fit the relay's reception counter. Within one epoch the counter never
   * goes down, so a lower `received` is just a stale answer (it overtook newer acks) and only
   * a higher one acknowledges ops whose ack was lost. A new epoch (relay reset or restored
   * from an older backup) is authoritative: ops it lacks are renumbered to follow its counter,
   * since pushing them with their old numbers would leave a gap it can never fill.
   */
  async reconcile(
    b: BucketState,
    epoch: string,
    received: number,
    rejected: readonly RejectedOp[] = [],
  ): Promise<void> {
    const known = b.meta.counterEpoch;
    if (known === null || known === epoch) {
      // The relay repeats its latest refusals of our ops: one whose ack was lost with a
      // connection, or came after a later ack, is news (we took that op as accepted).
      const news = rejected.filter((r) => r.originSeq > (b.meta.refusedUpTo ?? 0) && r.originSeq <= received);
      const ready = b.meta.ready;
      const seqs = news.map((r) => r.originSeq);
      if (news.length > 0) noteRefused(b, seqs);
      if (received > b.ackedUpTo) {
        const refused = new Map(news.filter((r) => r.originSeq > b.ackedUpTo).map((r) => [r.originSeq, r]));
        // One commit: the acknowledgement, and the re-join mark whenever any op was refused.
        await this.acknowledge(b, received, refused, news.length > 0);
      } else if (news.length > 0) await this.storeRefusal(b);
      // A resume would keep the refused values (a join drops them with their ops): re-join.
      if (news.length > 0 && ready) this.ctx.rejoin(b);
      if (received >= b.meta.nextOriginSeq) {
        // The relay has more of our ops than we remember issuing (our storage went back in
        // time): continue after its counter so no number is used twice.
        await this.renumber(b, received);
      } else if (known === null) {
        const meta = { ...b.meta, counterEpoch: epoch };
        await this.ctx.storage.commit({ bucket: b.name, meta });
        b.meta = meta;
      }
      return;
    }
    // A new epoch: whatever it holds of ours up to `received` is committed there.
    const upTo = Math.min(received, b.outbox[b.outbox.length - 1]?.originSeq ?? b.ackedUpTo);
    if (upTo > b.ackedUpTo) await this.acknowledge(b, upTo, undefined);
    await this.renumber(b, received, epoch);
  }

  /** Renumbers the outbox to follow `received` (and records the epoch the numbers belong to). */
  private async renumber(b: BucketState, received: number, epoch?: string): Promise<void> {
    const renumbered = b.outbox.map((op, i) => ({ ...op, originSeq: received + 1 + i }));
    const meta: BucketMeta = {
      ...b.meta,
      nextOriginSeq: received + 1 + renumbered.length,
      // Numbers of a new epoch follow `received`: refusals the relay still holds of ours are
      // of ops up to it, decided before (it keeps them across epochs, with its counter).
      ...(epoch === undefined ? {} : { counterEpoch: epoch, refusedUpTo: received }),
    };
    await this.ctx.storage.commit({ bucket: b.name, outboxReplace: renumbered, meta });
    b.outbox = renumbered;
    b.meta = meta;
    b.ackedUpTo = b.sentUpTo = received;
  }

  /** Stores that the bucket must re-join (its stored state holds writes the relay refused). */
  private async storeRefusal(b: BucketState): Promise<void> {
    try {
      await this.ctx.storage.commit({ bucket: b.name, meta: { ...b.meta, ready: false, checkpoint: 0 } });
    } catch (e) {
      this.ctx.fail(b, toMittsyncError(e, 'STORAGE_UNAVAILABLE'));
    }
  }

  /** Drops acknowledged ops from the outbox (memory, then storage) and settles their waiters. */
  private async acknowledge(
    b: BucketState,
    upTo: number,
    rejected: Map<number, { code: string; message: string }> | undefined,
    /** Store the re-join mark even if none of these ops is refused (an acknowledged one was). */
    refusedEarlier = false,
  ): Promise<void> {
    if (upTo <= b.ackedUpTo) return;
    const ctx = this.ctx;
    b.ackedUpTo = upTo;
    if (b.sentUpTo < upTo) b.sentUpTo = upTo;
    let n = 0;
    while (n < b.outbox.length && (b.outbox[n] as Op).originSeq <= upTo) n++;
    b.outbox.splice(0, n);
    ctx.env.clearTimeout(b.ackTimer);
    b.ackTimer = undefined;
    for (const [seq, w] of b.waiters) {
      if (seq > upTo) continue;
      b.waiters.delete(seq);
      const r = rejected?.get(seq);
      if (r === undefined) w.resolve();
      else w.reject(new MittsyncError(r.code as MittsyncError['code'], r.message));
    }
    if (rejected !== undefined && rejected.size > 0) {
      const first = rejected.values().next().value;
      if (first !== undefined)
        ctx.fail(b, new MittsyncError(first.code as MittsyncError['code'], first.message));
    }
    try {
      // Refused writes are still in storage, the relay holds something else: the bucket
      // re-joins (onAck), and says so durably with the ops it drops, so a crash before the
      // join ends re-joins again instead of resuming with the refused values.
      const refused = refusedEarlier || (rejected !== undefined && rejected.size > 0);
      await ctx.storage.commit({
        bucket: b.name,
        outboxAckUpTo: upTo,
        ...(refused ? { meta: { ...b.meta, ready: false, checkpoint: 0 } } : {}),
      });
    } catch (e) {
      // Harmless: the ops stay stored and are re-pushed after a restart; the relay dedupes.
      ctx.fail(b, toMittsyncError(e, 'STORAGE_UNAVAILABLE'));
    }
    this.pump(b);
    ctx.emitStatus();
  }
}

/** Remembers (in `b.meta`, stored with the next meta write) the refusals acted on. */
function noteRefused(b: BucketState, originSeqs: Iterable<number>): void {
  let top = b.meta.refusedUpTo ?? 0;
  for (const seq of originSeqs) if (seq > top) top = seq;
  if (top > (b.meta.refusedUpTo ?? 0)) b.meta = { ...b.meta, refusedUpTo: top };
}
