import type { ArrivedPage, BucketState, CatchUp, RangeCursor, ReadyInfo } from './bucket-state';
import { clearTimers, isDetachedCopy, newCatchUp } from './bucket-state';
import { checksumReplace, emptyChecksum } from './checksum';
import { littleEndian } from './columns';
import { backoffDelay } from './env';
import { addMerged, keep } from './fresh-join';
import type { LiveStream } from './live';
import { Mitt, type MittBounds } from './mitt';
import type { Entry } from './model';
import type { Outbox } from './outbox';
import { mergePages, sizeOf } from './page-merge';
import type { FlushedMsg, PageMsg, PageReqMsg, ResetMsg, SubscribedMsg } from './protocol';
import { type BucketMeta, policyOf } from './storage';
import type { SyncContext } from './sync-context';

/** What catch-up needs from its owner and from the live stream and the outbox. */
export interface CatchUpContext
  extends Pick<
    SyncContext,
    'env' | 'storage' | 'clock' | 'send' | 'isOpen' | 'emitChange' | 'emitStatus' | 'syncTask'
  > {
  /** True once the relay welcomed this connection (subscriptions wait for it). */
  welcomed(): boolean;
  /** Fetches one page of a download (on the socket, or another channel). */
  fetchPage(req: PageReqMsg): Promise<PageMsg | ResetMsg>;
  /** Tells ready listeners that a bucket completed a catch-up. */
  emitReady(info: ReadyInfo): void;
  /** Takes ops that overtook `subscribed`, and applies the mitt when the catch-up ends. */
  live: Pick<LiveStream, 'deliver' | 'apply' | 'applyHeld' | 'verify'>;
  /** Holds pushes until the relay's reception counter is known, then reconciles and pushes. */
  outbox: Pick<Outbox, 'hold' | 'reconcile' | 'release'>;
}

export interface CatchUpOptions {
  bounds: MittBounds;
  /** Most entries per page request. */
  pageSize: number;
  /** Key ranges downloaded in parallel during a join. */
  parallelRanges: number;
  /** Re-request a subscription or report a flush result lost after this long. */
  requestTimeoutMs: number;
  /** Backoff of page retries. */
  backoff: { baseMs: number; capMs: number };
}

/** Size of a catch-up's first page request; each next one doubles, up to `pageSize`. */
const FIRST_PAGE_ENTRIES = 250;

/** Most downloaded entries merged in one storage commit (pages that arrived meanwhile). */
const MERGE_BATCH_ENTRIES = 16_000;

/**
 * Catch-up of every bucket, one mechanism for join (`since = 0`) and resume (`since =
 * checkpoint`): subscribe first (live ops go to the mitt), download pages by key range, merge
 * them under the mitt's newer versions, wait for the state flush, then apply the mitt and flip
 * the bucket to ready with its checkpoint in the same commit. A `reset` restarts it as a join.
 */
export class CatchUpRunner {
  private nextSubId = 1;
  private nextReqId = 1;

  constructor(
    private readonly ctx: CatchUpContext,
    private readonly opts: CatchUpOptions,
  ) {}

  /**
   * (Re)subscribes a bucket: a resume from the checkpoint when ready, else a join. A ready
   * `copy` stays detached instead, unless a refresh was asked for: its refresh is a resume with
   * a state flush, so it is as consistent as a join.
   */
  subscribe(b: BucketState): void {
    const ctx = this.ctx;
    if (isDetachedCopy(b.meta, b.refreshing)) {
      this.detach(b);
      return;
    }
    if (!ctx.welcomed()) return;
    clearTimers(b, ctx.env);
    b.subId = this.nextSubId++;
    b.subscribedOk = false;
    b.mitt = null;
    b.early = [];
    b.catchUp = null;
    ctx.outbox.hold(b);
    const since = b.meta.ready ? b.meta.checkpoint : 0;
    const policy = policyOf(b.meta);
    b.subSince = since;
    b.phase = since > 0 ? 'resuming' : 'joining';
    const subId = b.subId;
    b.relaySubscribed = true;
    ctx.send({
      type: 'sub',
      bucket: b.name,
      since,
      flush: since === 0 || policy === 'copy',
      subId,
      ...(b.meta.epoch === null ? {} : { epoch: b.meta.epoch }),
      ...(policy === 'replica' ? {} : { policy }),
      ...(b.meta.spec === undefined ? {} : { spec: b.meta.spec }),
    });
    b.subTimer = ctx.env.setTimeout(() => {
      if (b.subId === subId && !b.subscribedOk) this.subscribe(b);
    }, this.opts.requestTimeoutMs);
    ctx.emitStatus();
  }

  /** Drops the bucket's subscription (the connection is gone): its async work is discarded. */
  stop(b: BucketState): void {
    b.mitt = null;
    b.catchUp = null;
    b.subscribedOk = false;
    b.relaySubscribed = false;
    b.subId = this.nextSubId++;
    b.phase = isDetachedCopy(b.meta, b.refreshing) ? 'detached' : 'idle';
  }

  /**
   * Takes a ready `copy` off the live stream: `unsub` if it is subscribed, and whatever the
   * stream still brings is discarded (the next refresh resumes from the checkpoint).
   */
  private detach(b: BucketState): void {
    const ctx = this.ctx;
    clearTimers(b, ctx.env);
    if (b.relaySubscribed && ctx.isOpen()) ctx.send({ type: 'unsub', bucket: b.name });
    this.stop(b);
    b.early = [];
    ctx.outbox.hold(b);
    ctx.emitStatus();
  }

  /** Forgets the checkpoint and re-joins (relay `reset`, refused writes, divergence). */
  rejoin(b: BucketState): void {
    b.meta = { ...b.meta, ready: false, checkpoint: 0 };
    this.subscribe(b);
  }

  /** Local writes made during a fresh join: later downloads must not overwrite them. */
  noteLocalWrites(b: BucketState, puts: readonly Entry[]): void {
    const cu = b.catchUp;
    if (cu?.fresh) keep(cu, puts, this.opts.bounds.maxKept);
  }

  onSubscribed(b: BucketState, msg: SubscribedMsg): void {
    if (msg.subId !== b.subId || b.subscribedOk) return; // stale or duplicated answer
    const ctx = this.ctx;
    b.subscribedOk = true;
    ctx.env.clearTimeout(b.subTimer);
    const since = b.subSince;
    b.mitt = new Mitt(msg.from, this.opts.bounds);
    b.sumAt = { seq: msg.from - 1, sum: msg.sum };
    b.relaySpec = msg.spec;
    const early = b.early;
    b.early = [];
    const cu = newCatchUp(msg, since, b.meta.widen);
    b.catchUp = cu;
    for (const m of early) {
      if (m.type === 'deliver') ctx.live.deliver(b, m);
      else this.onFlushed(b, m);
    }
    if (cu.flushId !== undefined) {
      cu.flushTimer = ctx.env.setTimeout(() => {
        // The flush result never came (lost, or the relay gave up silently): report it.
        if (b.catchUp === cu && cu.flushed === undefined) {
          cu.flushTimedOut = true;
          cu.flushed = {
            type: 'flushed',
            bucket: b.name,
            flushId: cu.flushId ?? '',
            seq: 0,
            covered: [],
            missed: [{ replicaId: '*', reason: 'timeout' }],
          };
          this.tryFinish(b, cu);
        }
      }, this.opts.requestTimeoutMs);
    }
    ctx.syncTask(b, async () => {
      if (b.catchUp !== cu) return;
      // Ops already committed by the relay (their ack was lost) count as acknowledged.
      await ctx.outbox.reconcile(b, msg.epoch, msg.received, msg.rejected);
      if (since === 0) {
        // A join starts from nothing but our own unacknowledged writes.
        const keepKeys = [...new Set(b.outbox.map((op) => op.key))];
        const meta: BucketMeta = {
          ...b.meta,
          epoch: null,
          checkpoint: 0,
          ready: false,
          sum: emptyChecksum(),
        };
        delete meta.widen; // a join reads everything
        const keptEntries = (await ctx.storage.getEntries(b.name, keepKeys)).filter(
          (e): e is Entry => e !== undefined,
        );
        keep(cu, keptEntries, this.opts.bounds.maxKept);
        for (const e of keptEntries) checksumReplace(meta.sum, e.key, undefined, e);
        await ctx.storage.resetBucket(b.name, keepKeys, meta);
        b.meta = meta;
      }
      if (b.catchUp !== cu) return;
      ctx.outbox.release(b);
      this.pumpRanges(b, cu);
    });
    ctx.emitStatus();
  }

  onFlushed(b: BucketState, msg: FlushedMsg): void {
    const cu = b.catchUp;
    if (cu === null && !b.subscribedOk && b.early.length < this.opts.bounds.maxAhead) {
      b.early.push(msg); // overtook `subscribed`
      return;
    }
    if (cu === null || cu.flushId !== msg.flushId || cu.flushed !== undefined) return;
    cu.flushed = msg;
    this.ctx.env.clearTimeout(cu.flushTimer);
    this.tryFinish(b, cu);
  }

  /** Flips the bucket to ready once download, flush and stream all cover the cut. */
  tryFinish(b: BucketState, cu: CatchUp): void {
    const ctx = this.ctx;
    const mitt = b.mitt;
    if (b.catchUp !== cu || mitt === null || cu.finishing || !cu.downloadDone) return;
    if (cu.flushId !== undefined && cu.flushed === undefined) {
      b.phase = 'flushing';
      ctx.emitStatus();
      return;
    }
    const target = Math.max(cu.from - 1, cu.flushed?.seq ?? 0);
    if (mitt.upTo < target) return; // more of the stream to come (or a gap to resolve)
    cu.finishing = true;
    ctx.syncTask(b, async () => {
      if (b.catchUp !== cu) return;
      const upTo = mitt.upTo;
      const widened = cu.ranges.some((r) => r.since !== undefined);
      await ctx.live.apply(b, mitt.spill(), {
        checkpoint: upTo,
        ready: true,
        epoch: cu.epoch,
        ...(widened ? { widen: [] } : {}),
      });
      if (b.catchUp !== cu) return;
      b.catchUp = null;
      b.phase = 'ready';
      const info: ReadyInfo = {
        bucket: b.name,
        checkpoint: upTo,
        covered: cu.flushed?.covered ?? [],
        missed: cu.flushed?.missed ?? [],
        flush: cu.flushed === undefined ? 'none' : cu.flushTimedOut ? 'timeout' : 'done',
        downloaded: cu.entries,
      };
      b.lastReady = info;
      b.storageFailures = 0;
      b.dlMaxSeqCheck = cu.dlMaxSeq;
      ctx.live.verify(b);
      for (const w of b.readyWaiters.splice(0)) w(info);
      ctx.emitReady(info);
      if (policyOf(b.meta) === 'copy') {
        // One consistent copy as of `upTo`: ops held past it are left for the next refresh.
        b.refreshing = false;
        this.detach(b);
        return;
      }
      ctx.emitStatus();
      // Live ops that came while this commit ran went into the mitt as the join's; no later
      // delivery may come to apply them, so apply them now.
      ctx.live.applyHeld(b, mitt);
    });
  }

  /**
   * Keeps up to `parallelRanges` page requests in flight, one per key range, while fewer
   * than that many downloaded pages wait to be merged (so memory stays bounded when storage
   * is slower than the network).
   */
  private pumpRanges(b: BucketState, cu: CatchUp): void {
    let inflight = cu.ranges.filter((r) => r.inflight).length;
    for (const r of cu.ranges) {
      if (inflight + cu.arrived.length >= this.opts.parallelRanges) return;
      if (r.done || r.inflight) continue;
      this.requestRange(b, cu, r);
      inflight++;
    }
  }

  private requestRange(b: BucketState, cu: CatchUp, r: RangeCursor): void {
    if (r.done || r.inflight || b.catchUp !== cu) return;
    const { ctx, opts } = this;
    r.inflight = true;
    const req: PageReqMsg = {
      type: 'pageReq',
      bucket: b.name,
      reqId: this.nextReqId++,
      since: r.since ?? cu.since,
      ...((r.spec ?? b.meta.spec) === undefined ? {} : { spec: r.spec ?? b.meta.spec }),
      // Small first pages get storage busy sooner; the rest at full size.
      limit: Math.min(opts.pageSize, FIRST_PAGE_ENTRIES * 2 ** cu.requested++),
      // Columns where this machine can read them (see columns.ts).
      ...(littleEndian ? { cols: true as const } : {}),
      ...(r.after === undefined ? {} : { after: r.after }),
      ...(r.until === undefined ? {} : { until: r.until }),
    };
    ctx.fetchPage(req).then(
      (res) => {
        r.inflight = false;
        if (b.catchUp !== cu) return;
        if (res.type === 'reset') {
          this.rejoin(b);
          return;
        }
        cu.pageFailures = 0;
        // The cursor moves now, so the range's next page can download while this one waits
        // to be merged; pages of one range arrive, and are merged, in key order.
        if (res.next === null) r.done = true;
        else r.after = res.next;
        const span =
          res.head === undefined
            ? undefined
            : { after: req.after, upTo: res.next ?? req.until, head: res.head };
        cu.arrived.push({ entries: res.cols ?? res.entries, span });
        this.mergeArrived(b, cu);
        this.pumpRanges(b, cu);
      },
      () => {
        r.inflight = false;
        // Timed out, refused (rate limit) or the connection dropped: retry after a backoff
        // while this catch-up is still current.
        cu.pageFailures++;
        const delay = backoffDelay(cu.pageFailures, ctx.env.random, opts.backoff.baseMs, opts.backoff.capMs);
        ctx.env.setTimeout(() => {
          if (b.catchUp === cu && ctx.isOpen()) this.pumpRanges(b, cu);
        }, delay);
      },
    );
  }

  /**
   * Merges the downloaded pages waiting in `cu.arrived`, as many as arrived (up to
   * {@link MERGE_BATCH_ENTRIES} entries) in one storage commit: when storage is the slower
   * side, pages pile up during a commit and the next one takes them all, so the cost per
   * commit is paid per batch instead of per page.
   */
  private mergeArrived(b: BucketState, cu: CatchUp): void {
    if (cu.merging || cu.arrived.length === 0) return;
    const ctx = this.ctx;
    cu.merging = true;
    ctx.syncTask(b, async () => {
      if (b.catchUp !== cu) return;
      let n = 0;
      let count = 0;
      while (n < cu.arrived.length && (n === 0 || count < MERGE_BATCH_ENTRIES)) {
        count += sizeOf((cu.arrived[n] as ArrivedPage).entries);
        n++;
      }
      const batch = cu.arrived.slice(0, n);
      await mergePages(
        ctx,
        b,
        cu,
        batch.map((p) => p.entries),
        this.opts.bounds.maxKept,
      );
      if (b.catchUp !== cu) return;
      for (const p of batch) addMerged(cu, p.span);
      cu.arrived.splice(0, n);
      cu.pages += n;
      cu.entries += count;
      cu.merging = false;
      ctx.emitStatus();
      if (cu.arrived.length > 0) this.mergeArrived(b, cu);
      else if (cu.ranges.every((x) => x.done && !x.inflight)) {
        cu.downloadDone = true;
        this.tryFinish(b, cu);
      }
      this.pumpRanges(b, cu);
    });
  }
}
