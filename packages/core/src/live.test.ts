import { describe, expect, it } from 'vitest';
import { type BucketState, newCatchUp } from './bucket-state';
import { type Checksum, checksumOf, emptyChecksum } from './checksum';
import { LiveStream } from './live';
import { DEFAULT_MITT_BOUNDS, Mitt, type MittBounds } from './mitt';
import type { Entry, SeqOp } from './model';
import type { DeliverMsg } from './protocol';
import {
  entry,
  type FakeSync,
  fakeSync,
  freshBucket,
  localOp,
  seqOp,
  settle,
  storedValues,
} from './testing/sync-fakes';

interface Rig {
  f: FakeSync;
  live: LiveStream;
  b: BucketState;
  calls: string[];
  /** The relay's log (delivered frames carry its checksum as of their last seq). */
  log: SeqOp[];
  /** Delivers the logged ops of `seqs` in one frame. */
  send(...seqs: number[]): void;
  /** Logs `ops` and delivers them in one frame. */
  deliver(...ops: SeqOp[]): void;
}

/** A ready bucket subscribed from seq 1, holding `stored`. */
async function rig(
  opts: { stored?: Entry[]; mitt?: Partial<MittBounds>; maxAhead?: number } = {},
): Promise<Rig> {
  const f = fakeSync();
  const calls: string[] = [];
  const live = new LiveStream(
    {
      ...f,
      // Late-bound, so a test can wrap it.
      emitApplying: (bucket, entries, committed) => f.emitApplying(bucket, entries, committed),
      resubscribe: (x) => calls.push(`resubscribe ${x.name}`),
      tryFinish: (x, cu) => calls.push(`tryFinish ${x.name} ${x.catchUp === cu}`),
      rejoin: (x) => calls.push(`rejoin ${x.name}`),
    },
    { bounds: { maxAhead: opts.maxAhead ?? 100, maxKept: 1_000 }, gapTimeoutMs: 200 },
  );
  const stored = opts.stored ?? [];
  const b = freshBucket();
  b.meta = { ...b.meta, ready: true, epoch: 'e1', sum: checksumOf(stored) };
  await f.storage.commit({ bucket: 'b', puts: stored, meta: b.meta });
  b.phase = 'ready';
  b.subscribedOk = true;
  b.mitt = new Mitt(1, { ...DEFAULT_MITT_BOUNDS, ...opts.mitt });
  b.sumAt = { seq: 0, sum: checksumOf(stored) };
  const log: SeqOp[] = [];
  /** The relay's checksum after seq `upTo`: its state at that point of its log. */
  const sumAt = (upTo: number): Checksum => {
    const state = new Map(stored.map((e) => [e.key, e]));
    for (const op of log) {
      const cur = state.get(op.key);
      if (op.seq <= upTo && (cur === undefined || op.hlc > cur.hlc))
        state.set(op.key, op.kind === 'del' ? { ...op, deleted: true } : { ...op });
    }
    return checksumOf(state.values());
  };
  const send = (...seqs: number[]) => {
    const ops = seqs.map((s) => log.find((o) => o.seq === s) as SeqOp);
    live.deliver(b, frame(ops, sumAt(Math.max(...seqs))));
  };
  const r: Rig = {
    f,
    live,
    b,
    calls,
    log,
    send,
    deliver: (...ops) => {
      log.push(...ops);
      send(...ops.map((o) => o.seq));
    },
  };
  return r;
}

const frame = (ops: SeqOp[], sum: Checksum): DeliverMsg => ({ type: 'deliver', bucket: 'b', ops, sum });

describe('LiveStream', () => {
  it('keeps frames that overtook `subscribed` for the mitt, up to maxAhead', async () => {
    const { f, live, b } = await rig({ maxAhead: 2 });
    b.subscribedOk = false;
    for (let seq = 1; seq <= 3; seq++)
      live.deliver(b, frame([seqOp(seq, `k${seq}`, seq, seq)], emptyChecksum()));
    await settle();
    expect(b.early.map((m) => (m.type === 'deliver' ? m.ops[0]?.seq : -1))).toEqual([1, 2]);
    expect(f.storage.peek('b').size).toBe(0);
  });

  it("applies a ready bucket's ops with their checkpoint in one commit, and verifies the checksum", async () => {
    const r = await rig();
    r.deliver(seqOp(1, 'a', 1, 'x'), seqOp(2, 'b', 2, 'y'));
    await settle();
    expect(storedValues(r.f.storage)).toEqual({ a: 'x', b: 'y' });
    expect(r.f.storage.peekMeta('b').meta?.checkpoint).toBe(2);
    expect(r.b.verified).toBe(1);
    expect(r.f.changes.map((c) => [c.source, c.entries.map((e) => e.key)])).toEqual([['remote', ['a', 'b']]]);
  });

  it('announces the winners while their commit runs, before storage or the checkpoint has them', async () => {
    const r = await rig({ stored: [entry('a', 9, 'newer')] });
    // A store whose commits take a while, as IndexedDB's do (the memory store's are instant).
    const commit = r.f.storage.commit.bind(r.f.storage);
    r.f.storage.commit = async (batch) => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      return commit(batch);
    };
    const seen: [string[], Record<string, unknown>, number][] = [];
    const emit = r.f.emitApplying;
    r.f.emitApplying = (bucket, entries, committed) => {
      // What storage held when the entries were announced.
      seen.push([
        entries.map((e) => e.key),
        storedValues(r.f.storage),
        r.f.storage.peekMeta('b').meta?.checkpoint ?? -1,
      ]);
      emit(bucket, entries, committed);
    };
    r.deliver(seqOp(1, 'a', 5, 'older'), seqOp(2, 'b', 2, 'y'));
    await settle();
    expect(seen).toEqual([[['b'], { a: 'newer' }, 0]]);
    await r.f.applying[0]?.committed;
    expect(storedValues(r.f.storage)).toEqual({ a: 'newer', b: 'y' });
    expect(r.f.storage.peekMeta('b').meta?.checkpoint).toBe(2);
    expect(r.f.changes.map((c) => c.entries)).toEqual(r.f.applying.map((a) => a.entries));
  });

  it('does not overwrite a stored entry with an older live op, and still advances the checkpoint', async () => {
    const r = await rig({ stored: [entry('a', 9, 'newer')] });
    r.deliver(seqOp(1, 'a', 5, 'older'));
    await settle();
    expect(storedValues(r.f.storage)).toEqual({ a: 'newer' });
    expect(r.b.meta.checkpoint).toBe(1);
    expect(r.f.changes).toEqual([]);
  });

  it('a live tombstone newer than the stored entry deletes it', async () => {
    const r = await rig({ stored: [entry('a', 3, 'old')] });
    r.deliver(seqOp(1, 'a', 5));
    await settle();
    expect(storedValues(r.f.storage)).toEqual({ a: '<deleted>' });
    expect(r.b.verified).toBe(1);
  });

  it('applies a duplicated frame once', async () => {
    const r = await rig();
    const ops = [seqOp(1, 'a', 1, 'x')];
    r.deliver(...ops);
    r.deliver(...ops);
    await settle();
    expect(r.f.changes).toHaveLength(1);
  });

  it('resubscribes when a gap persists past gapTimeoutMs, and keeps the checkpoint before it', async () => {
    const r = await rig();
    r.log.push(seqOp(1, 'a', 1, 'x'), seqOp(2, 'b', 2, 'y'), seqOp(3, 'c', 3, 'z'));
    r.send(1);
    r.send(3);
    await r.f.run(199);
    expect(r.calls).toEqual([]);
    expect(r.b.meta.checkpoint).toBe(1);
    await r.f.run(1);
    expect(r.calls).toEqual(['resubscribe b']);
  });

  it('does not resubscribe when the gap is filled in time', async () => {
    const r = await rig();
    r.log.push(seqOp(1, 'a', 1, 'x'), seqOp(2, 'b', 2, 'y'), seqOp(3, 'c', 3, 'z'));
    r.send(1);
    r.send(3);
    r.send(2);
    await r.f.run(1_000);
    expect(r.calls).toEqual([]);
    expect(r.b.meta.checkpoint).toBe(3);
    expect(r.b.verified).toBeGreaterThan(0);
  });

  it('treats a gap wider than the mitt tracks as a lost stream and resubscribes at once', async () => {
    const r = await rig({ mitt: { maxAhead: 1 } });
    r.deliver(seqOp(3, 'c', 3, 'z'), seqOp(4, 'd', 4, 'w'));
    expect(r.calls).toEqual(['resubscribe b']);
  });

  it('while catching up, holds ops in the mitt (nothing stored) and asks catch-up whether it can finish', async () => {
    const r = await rig();
    r.b.catchUp = newCatchUp(
      {
        type: 'subscribed',
        bucket: 'b',
        subId: 1,
        epoch: 'e1',
        from: 1,
        received: 0,
        sum: emptyChecksum(),
        splits: [],
      },
      0,
    );
    r.deliver(seqOp(1, 'a', 1, 'x'), seqOp(2, 'b', 2, 'y'));
    await settle();
    expect(r.f.storage.peek('b').size).toBe(0);
    expect(r.b.mitt?.heldCount).toBe(2);
    expect(r.calls).toEqual(['tryFinish b true']);
  });

  it('while catching up, spills a mitt over its bound to storage without moving the checkpoint', async () => {
    const r = await rig({ mitt: { maxOps: 1 } });
    r.b.meta = { ...r.b.meta, ready: false };
    const cu = newCatchUp(
      {
        type: 'subscribed',
        bucket: 'b',
        subId: 1,
        epoch: 'e1',
        from: 1,
        received: 0,
        sum: emptyChecksum(),
        splits: [],
      },
      0,
    );
    r.b.catchUp = cu;
    r.deliver(seqOp(1, 'a', 1, 'x'), seqOp(2, 'b', 2));
    await settle();
    expect(storedValues(r.f.storage)).toEqual({ a: 'x', b: '<deleted>' });
    expect(r.b.mitt?.heldCount).toBe(0);
    expect(r.b.meta.checkpoint).toBe(0);
    // A fresh join remembers what it applied so later downloads do not overwrite it.
    expect([...cu.kept.keys()].sort()).toEqual(['a', 'b']);
  });

  it('re-joins with CHECKSUM_MISMATCH when the stored state differs from the relay at the checkpoint', async () => {
    const r = await rig();
    r.live.deliver(r.b, frame([seqOp(1, 'a', 1, 'x')], checksumOf([entry('other', 1, 'v')])));
    await settle();
    expect(r.f.errors).toEqual([{ bucket: 'b', code: 'CHECKSUM_MISMATCH' }]);
    expect(r.calls).toEqual(['rejoin b']);
  });

  it('compares no checksum while own writes are pending (the relay has not applied them yet)', async () => {
    const r = await rig();
    r.b.outbox.push(localOp(1, 'mine'));
    r.live.deliver(r.b, frame([seqOp(1, 'a', 1, 'x')], checksumOf([entry('other', 1, 'v')])));
    await settle();
    expect(r.calls).toEqual([]);
    expect(r.b.verified).toBe(0);
  });
});
