import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { BucketState, ReadyInfo } from './bucket-state';
import { type CatchUpOptions, CatchUpRunner } from './catch-up';
import { type Checksum, checksumOf } from './checksum';
import { LiveStream } from './live';
import { DEFAULT_MITT_BOUNDS } from './mitt';
import { type Entry, keyOrder, opToEntry, type SeqOp, type Value } from './model';
import type { FlushedMsg, PageMsg, PageReqMsg, ResetMsg, SubMsg, SubscribedMsg } from './protocol';
import {
  entry,
  type FakeSync,
  fakeSync,
  freshBucket,
  hlc,
  localOp,
  storedValues,
} from './testing/sync-fakes';

/** The relay side of one bucket: its state, its log, and the page requests waiting for it. */
class FakeRelay {
  head = 0;
  readonly log: SeqOp[] = [];
  readonly base: Entry[] = [];
  readonly waiting: { req: PageReqMsg; resolve(m: PageMsg | ResetMsg): void }[] = [];

  /** Entries the bucket held before the test (seq 1..n). */
  seed(values: Record<string, Value>): void {
    for (const [k, v] of Object.entries(values)) this.base.push(entry(k, ++this.head, v, this.head));
  }

  /** The state as of seq `at`. */
  state(at = this.head): Map<string, Entry> {
    const s = new Map(this.base.filter((e) => e.seq <= at).map((e) => [e.key, e]));
    for (const op of this.log) {
      if (op.seq > at) continue;
      s.set(op.key, opToEntry(op, op.seq));
    }
    return s;
  }

  sum(at = this.head): Checksum {
    return checksumOf(this.state(at).values());
  }

  /** Another writer's op, committed: returns it as delivered (with the key's previous state). */
  write(key: string, value?: Value): SeqOp {
    const prevEntry = this.state().get(key);
    const seq = ++this.head;
    const base = { origin: 'rW', originSeq: seq, key, hlc: hlc(1_000 + seq, 'rW'), seq };
    const prev =
      prevEntry === undefined
        ? null
        : { hlc: prevEntry.hlc, ...(prevEntry.deleted ? { deleted: true } : {}) };
    const op: SeqOp =
      value === undefined ? { ...base, kind: 'del', prev } : { ...base, kind: 'set', value, prev };
    this.log.push(op);
    return op;
  }

  fetch = (req: PageReqMsg): Promise<PageMsg | ResetMsg> =>
    new Promise((resolve) => this.waiting.push({ req, resolve }));

  /** Answers waiting request `i` from the state as of `asOf` (a fuzzy read may be stale). */
  serve(i = 0, asOf = this.head): void {
    const [w] = this.waiting.splice(i, 1);
    if (w === undefined) throw new Error('no page request waiting');
    const { after, until, limit, since } = w.req;
    const inRange = [...this.state(asOf).values()]
      .filter(
        (e) =>
          e.seq > since && (after === undefined || e.key > after) && (until === undefined || e.key <= until),
      )
      .sort(keyOrder);
    const entries = inRange.slice(0, limit);
    const next = inRange.length > limit ? (entries[entries.length - 1] as Entry).key : null;
    w.resolve({ type: 'page', bucket: 'b', reqId: w.req.reqId, entries, next, head: asOf });
  }

  reset(i = 0): void {
    const [w] = this.waiting.splice(i, 1);
    w?.resolve({ type: 'reset', bucket: 'b', subId: -1, epoch: 'e2', reason: 'horizon' });
  }
}

interface Rig {
  f: FakeSync;
  relay: FakeRelay;
  runner: CatchUpRunner;
  live: LiveStream;
  b: BucketState;
  calls: string[];
  readies: ReadyInfo[];
  subs(): SubMsg[];
  /** The relay's answer to the last `sub`. */
  subscribed(extra?: Partial<SubscribedMsg>): void;
  deliver(...ops: SeqOp[]): void;
  flushed(seq?: number): void;
  /** Answers page requests until none is waiting. */
  serveAll(): Promise<void>;
}

function rig(opts: Partial<CatchUpOptions> = {}, b = freshBucket()): Rig {
  const f = fakeSync();
  const relay = new FakeRelay();
  const calls: string[] = [];
  const readies: ReadyInfo[] = [];
  const bounds = { ...DEFAULT_MITT_BOUNDS, ...opts.bounds };
  const live: LiveStream = new LiveStream(
    {
      ...f,
      resubscribe: (x) => runner.subscribe(x),
      tryFinish: (x, cu) => runner.tryFinish(x, cu),
      rejoin: (x) => runner.rejoin(x),
    },
    { bounds, gapTimeoutMs: 200 },
  );
  const runner: CatchUpRunner = new CatchUpRunner(
    {
      ...f,
      welcomed: () => f.open,
      fetchPage: relay.fetch,
      emitReady: (info) => readies.push(info),
      live,
      outbox: {
        hold: (x) => calls.push(`hold ${x.name}`),
        reconcile: async (x, epoch, received) => {
          calls.push(`reconcile ${x.name} ${epoch} ${received}`);
        },
        release: (x) => calls.push(`release ${x.name}`),
      },
    },
    {
      pageSize: 4000,
      parallelRanges: 4,
      requestTimeoutMs: 1_000,
      backoff: { baseMs: 10, capMs: 100 },
      ...opts,
      bounds,
    },
  );
  const subs = () => f.sent.filter((m): m is SubMsg => m.type === 'sub');
  return {
    f,
    relay,
    runner,
    live,
    b,
    calls,
    readies,
    subs,
    subscribed: (extra = {}) => {
      const sub = subs().at(-1) as SubMsg;
      runner.onSubscribed(b, {
        type: 'subscribed',
        bucket: 'b',
        subId: sub.subId,
        epoch: 'e1',
        from: relay.head + 1,
        received: 0,
        sum: relay.sum(),
        splits: [],
        ...(sub.flush ? { flushId: `f${sub.subId}` } : {}),
        ...extra,
      });
    },
    deliver: (...ops) => {
      live.deliver(b, { type: 'deliver', bucket: 'b', ops, sum: relay.sum(ops.at(-1)?.seq) });
    },
    flushed: (seq = relay.head) => {
      const msg: FlushedMsg = {
        type: 'flushed',
        bucket: 'b',
        flushId: b.catchUp?.flushId ?? '',
        seq,
        covered: ['rW'],
        missed: [],
      };
      runner.onFlushed(b, msg);
    },
    serveAll: async () => {
      await f.run(0);
      while (relay.waiting.length > 0) {
        relay.serve();
        await f.run(0);
      }
    },
  };
}

const liveValues = (m: Map<string, Entry>) => {
  const out: Record<string, unknown> = {};
  for (const k of [...m.keys()].sort()) {
    const e = m.get(k) as Entry;
    if (!e.deleted) out[k] = e.value;
  }
  return out;
};
const storedLive = (r: Rig) => {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(storedValues(r.f.storage))) if (v !== '<deleted>') out[k] = v;
  return out;
};

describe('CatchUpRunner', () => {
  it('subscribes before it downloads: no page is asked for until the relay confirms the subscription', async () => {
    const r = rig();
    r.relay.seed({ a: 1 });
    r.runner.subscribe(r.b);
    expect(r.subs()).toMatchObject([{ bucket: 'b', since: 0, flush: true }]);
    expect(r.b.phase).toBe('joining');
    await r.f.run(0);
    expect(r.relay.waiting).toHaveLength(0);
    r.subscribed();
    await r.f.run(0);
    expect(r.relay.waiting).toHaveLength(1);
    // Pushes wait for the relay's counter: held at subscribe, reconciled, then released.
    expect(r.calls).toEqual(['hold b', 'reconcile b e1 0', 'release b']);
  });

  it('a ready bucket resumes from its checkpoint, without a flush', () => {
    const b = freshBucket();
    b.meta = { ...b.meta, ready: true, checkpoint: 7, epoch: 'e1' };
    const r = rig({}, b);
    r.runner.subscribe(b);
    expect(r.subs()).toMatchObject([{ since: 7, flush: false, epoch: 'e1' }]);
    expect(b.phase).toBe('resuming');
  });

  it('ignores a stale or duplicated `subscribed`, and re-sends a subscription left unanswered', async () => {
    const r = rig();
    r.runner.subscribe(r.b);
    const first = r.subs()[0] as SubMsg;
    r.runner.subscribe(r.b);
    r.runner.onSubscribed(r.b, {
      type: 'subscribed',
      bucket: 'b',
      subId: first.subId,
      epoch: 'e1',
      from: 1,
      received: 0,
      sum: r.relay.sum(),
      splits: [],
    });
    expect(r.b.catchUp).toBeNull();
    await r.f.run(1_000);
    expect(r.subs()).toHaveLength(3);
  });

  it("drops a downloaded entry older than the mitt's: the live version is what ends up stored", async () => {
    const r = rig();
    r.relay.seed({ j: 'j', k: 'old' });
    r.runner.subscribe(r.b);
    r.subscribed();
    const asOf = r.relay.head;
    r.deliver(r.relay.write('k', 'new'));
    await r.f.run(0);
    r.relay.serve(0, asOf); // a page read before the live write
    r.flushed();
    await r.f.run(0);
    expect(r.b.phase).toBe('ready');
    expect(storedValues(r.f.storage)).toEqual({ j: 'j', k: 'new' });
  });

  it('a tombstone in the mitt wins over the downloaded value', async () => {
    const r = rig();
    r.relay.seed({ j: 'j', k: 'old' });
    r.runner.subscribe(r.b);
    r.subscribed();
    const asOf = r.relay.head;
    r.deliver(r.relay.write('k'));
    await r.f.run(0);
    r.relay.serve(0, asOf);
    r.flushed();
    await r.f.run(0);
    expect(r.b.phase).toBe('ready');
    expect(storedValues(r.f.storage)).toEqual({ j: 'j', k: '<deleted>' });
    expect(r.b.verified).toBe(1);
  });

  const events = ['download', 'stream', 'flush'] as const;
  const orders = events.flatMap((x) =>
    events.filter((y) => y !== x).flatMap((y) => [[x, y, events.find((z) => z !== x && z !== y) as string]]),
  );
  for (const order of orders) {
    it(`is not ready until the download, the stream up to the flush cut and the flush are done (${order.join(', ')})`, async () => {
      const r = rig();
      r.relay.seed({ a: 1, b: 2, c: 3 });
      r.runner.subscribe(r.b);
      r.subscribed();
      await r.f.run(0);
      const op = r.relay.write('b', 'during the join');
      for (const [i, ev] of order.entries()) {
        if (ev === 'download') await r.serveAll();
        else if (ev === 'stream') r.deliver(op);
        else r.flushed(op.seq);
        await r.f.run(0);
        const last = i === order.length - 1;
        expect(r.b.phase === 'ready').toBe(last);
        expect(r.f.storage.peekMeta('b').meta?.ready).toBe(last);
        expect(r.readies).toHaveLength(last ? 1 : 0);
      }
      expect(r.readies[0]).toMatchObject({ checkpoint: op.seq, flush: 'done', covered: ['rW'] });
      expect(storedLive(r)).toEqual({ a: 1, b: 'during the join', c: 3 });
    });
  }

  it('reports the flush as timed out when its result never comes, and is ready anyway', async () => {
    const r = rig();
    r.relay.seed({ a: 1 });
    r.runner.subscribe(r.b);
    r.subscribed();
    await r.serveAll();
    expect(r.b.phase).toBe('flushing');
    await r.f.run(1_000);
    expect(r.readies).toMatchObject([{ flush: 'timeout', missed: [{ replicaId: '*', reason: 'timeout' }] }]);
  });

  it('a resume downloads what changed since the checkpoint and is ready without a flush', async () => {
    const b = freshBucket();
    const r = rig({}, b);
    r.relay.seed({ a: 1, b: 2 });
    await r.f.storage.commit({ bucket: 'b', puts: r.relay.base.slice(0, 1) });
    b.meta = {
      ...b.meta,
      ready: true,
      checkpoint: 1,
      epoch: 'e1',
      sum: checksumOf(r.relay.base.slice(0, 1)),
    };
    r.runner.subscribe(b);
    r.subscribed();
    await r.serveAll();
    expect(r.readies).toMatchObject([{ checkpoint: 2, flush: 'none' }]);
    expect(storedLive(r)).toEqual({ a: 1, b: 2 });
    expect(b.verified).toBe(1);
  });

  it('a page answered with reset re-joins from scratch', async () => {
    const b = freshBucket();
    b.meta = { ...b.meta, ready: true, checkpoint: 5, epoch: 'e1' };
    const r = rig({}, b);
    r.runner.subscribe(b);
    r.subscribed();
    await r.f.run(0);
    r.relay.reset();
    await r.f.run(0);
    expect(r.subs().map((s) => s.since)).toEqual([5, 0]);
    expect(b.meta).toMatchObject({ ready: false, checkpoint: 0 });
    expect(b.phase).toBe('joining');
    expect(b.catchUp).toBeNull();
  });

  it('a re-join keeps unacknowledged local writes, drops the rest, and never lets an older download win', async () => {
    const mine = localOp(1, 'mine', 'local');
    const b = freshBucket('b', [mine]);
    const r = rig({}, b);
    r.relay.seed({ mine: 'relay, older', theirs: 'relay' });
    const local = { key: 'mine', hlc: hlc(5_000), seq: 0, value: 'local' };
    await r.f.storage.commit({ bucket: 'b', puts: [local, entry('stale', 1, 'gone soon')] });
    b.meta = { ...b.meta, ready: true, checkpoint: 9, epoch: 'e0' };
    r.runner.rejoin(b);
    expect(r.subs()).toMatchObject([{ since: 0 }]);
    r.subscribed();
    await r.f.run(0);
    expect(storedValues(r.f.storage)).toEqual({ mine: 'local' });
    expect(b.catchUp?.kept.get('mine')).toEqual({ hlc: local.hlc });
    await r.serveAll();
    r.flushed();
    await r.f.run(0);
    expect(b.phase).toBe('ready');
    expect(storedValues(r.f.storage)).toEqual({ mine: 'local', theirs: 'relay' });
  });

  it('downloads every key range the relay split the bucket into', async () => {
    const r = rig({ pageSize: 2 });
    r.relay.seed({ a: 1, b: 2, c: 3, m: 4, n: 5, x: 6, y: 7 });
    r.runner.subscribe(r.b);
    r.subscribed({ splits: ['c', 'n'] });
    await r.f.run(0);
    expect(r.relay.waiting.map((w) => [w.req.after, w.req.until])).toEqual([
      [undefined, 'c'],
      ['c', 'n'],
      ['n', undefined],
    ]);
    await r.serveAll();
    r.flushed();
    await r.f.run(0);
    expect(storedLive(r)).toEqual(liveValues(r.relay.state()));
    expect(r.b.catchUp).toBeNull();
  });

  it('when the connection goes, drops the subscription; without a welcome it does not subscribe', () => {
    const r = rig();
    r.runner.subscribe(r.b);
    const subId = r.b.subId;
    r.runner.stop(r.b);
    expect(r.b).toMatchObject({ phase: 'idle', catchUp: null, mitt: null, subscribedOk: false });
    expect(r.b.subId).not.toBe(subId);
    r.f.open = false;
    r.runner.subscribe(r.b);
    expect(r.subs()).toHaveLength(1);
  });

  it('converges on the relay state whatever the page order, ranges, sizes and live writes (property)', async () => {
    const keys = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
    const action = fc.oneof(
      fc.record({ serve: fc.nat(), stale: fc.boolean() }),
      fc.record({ write: fc.constantFrom(...keys), del: fc.boolean() }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.dictionary(fc.constantFrom(...keys), fc.integer(), { maxKeys: 8 }),
        fc.subarray(keys),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 3 }),
        fc.array(action, { maxLength: 25 }),
        async (seed, splits, pageSize, parallelRanges, script) => {
          const r = rig({ pageSize, parallelRanges, bounds: { ...DEFAULT_MITT_BOUNDS, maxOps: 3 } });
          r.relay.seed(seed);
          r.runner.subscribe(r.b);
          r.subscribed({ splits: [...splits].sort() });
          const subHead = r.relay.head;
          await r.f.run(0);
          for (const a of script) {
            if ('serve' in a) {
              if (r.relay.waiting.length === 0) continue;
              // A stale page: read as of the subscription, before some live writes.
              r.relay.serve(a.serve % r.relay.waiting.length, a.stale ? subHead : r.relay.head);
            } else {
              r.deliver(r.relay.write(a.write, a.del ? undefined : `v${r.relay.head + 1}`));
            }
            await r.f.run(0);
          }
          r.flushed();
          await r.serveAll();
          expect(r.b.phase).toBe('ready');
          expect(r.b.meta.checkpoint).toBe(r.relay.head);
          expect(storedLive(r)).toEqual(liveValues(r.relay.state()));
          expect(r.f.errors).toEqual([]);
          expect(r.b.verified).toBe(1);
        },
      ),
      { numRuns: 150 },
    );
  });
});
