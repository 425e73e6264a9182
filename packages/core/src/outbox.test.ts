import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { BucketState } from './bucket-state';
import { MittsyncError } from './errors';
import type { Op } from './model';
import { Outbox, type OutboxOptions, REFUSED_RETRY_MS } from './outbox';
import type { AckMsg, PushMsg } from './protocol';
import { type FakeSync, fakeSync, freshBucket, localOp, settle } from './testing/sync-fakes';
import { DEFAULT_LIMITS } from './validate';

interface Rig {
  f: FakeSync;
  outbox: Outbox;
  b: BucketState;
  rejoined: string[];
  /** originSeqs of each push frame sent. */
  frames(): number[][];
}

/** An outbox over a bucket holding `n` unacknowledged ops (stored too), counted in epoch e1. */
async function rig(n: number, opts: Partial<OutboxOptions> = {}, maxOpsPerFrame = 2000): Promise<Rig> {
  const f = fakeSync();
  const ops = Array.from({ length: n }, (_, i) => localOp(i + 1, `k${i + 1}`));
  const b = freshBucket('b', ops);
  b.meta = { ...b.meta, counterEpoch: 'e1' };
  await f.storage.commit({ bucket: 'b', outboxAdd: ops, meta: b.meta });
  const rejoined: string[] = [];
  const outbox = new Outbox(
    {
      ...f,
      limits: () => ({ ...DEFAULT_LIMITS, maxOpsPerFrame }),
      rejoin: (x) => rejoined.push(x.name),
    },
    { pushBatch: 500, pushWindow: 10_000, ackTimeoutMs: 1_000, ...opts },
  );
  const frames = () =>
    f.sent.filter((m): m is PushMsg => m.type === 'push').map((m) => m.ops.map((o) => o.originSeq));
  return { f, outbox, b, rejoined, frames };
}

/** Settles a promise into what it came to, without waiting for it. */
function outcome(p: Promise<void>): { value: string } {
  const o = { value: 'pending' };
  p.then(
    () => {
      o.value = 'resolved';
    },
    (e: MittsyncError) => {
      o.value = e.code;
    },
  );
  return o;
}

const ack = (upTo: number, extra: Partial<AckMsg> = {}): AckMsg => ({
  type: 'ack',
  bucket: 'b',
  upTo,
  ...extra,
});

describe('Outbox', () => {
  it('pushes nothing while held, then sends the outbox in originSeq order in frames of pushBatch', async () => {
    const { outbox, b, frames } = await rig(7, { pushBatch: 3 });
    outbox.pump(b);
    expect(frames()).toEqual([]);
    outbox.release(b);
    expect(frames()).toEqual([[1, 2, 3], [4, 5, 6], [7]]);
  });

  it("keeps frames within the relay's maxOpsPerFrame when it is below pushBatch", async () => {
    const { outbox, b, frames } = await rig(5, { pushBatch: 500 }, 2);
    outbox.release(b);
    expect(frames()).toEqual([[1, 2], [3, 4], [5]]);
  });

  it('sends nothing while the connection is down', async () => {
    const { f, outbox, b, frames } = await rig(3);
    f.open = false;
    outbox.release(b);
    expect(frames()).toEqual([]);
    expect(b.sentUpTo).toBe(0);
  });

  it('stops at the window and sends more as acks come', async () => {
    const { outbox, b, frames } = await rig(6, { pushBatch: 2, pushWindow: 2 });
    outbox.release(b);
    expect(frames()).toEqual([[1, 2]]);
    outbox.onAck(b, ack(2));
    await settle();
    expect(frames()).toEqual([
      [1, 2],
      [3, 4],
    ]);
  });

  it('sends every op once, in order, within the frame bound, whatever the batch, limit and window (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 40 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 12 }),
        async (n, pushBatch, limit, pushWindow) => {
          const { outbox, b, frames } = await rig(n, { pushBatch, pushWindow }, limit);
          outbox.release(b);
          for (let i = 0; i <= n && b.ackedUpTo < n; i++) {
            expect(b.sentUpTo - b.ackedUpTo).toBeLessThan(pushWindow + Math.min(pushBatch, limit));
            outbox.onAck(b, ack(b.sentUpTo));
            await settle();
          }
          const sent = frames();
          for (const fr of sent) expect(fr.length).toBeLessThanOrEqual(Math.min(pushBatch, limit));
          expect(sent.flat()).toEqual(Array.from({ length: n }, (_, i) => i + 1));
          expect(b.outbox).toEqual([]);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('re-sends from the last ack when no ack comes within ackTimeoutMs', async () => {
    const { f, outbox, b, frames } = await rig(2, { ackTimeoutMs: 1_000 });
    outbox.release(b);
    await f.run(999);
    expect(frames()).toEqual([[1, 2]]);
    await f.run(1);
    expect(frames()).toEqual([
      [1, 2],
      [1, 2],
    ]);
  });

  it('an ack drops the covered ops from memory and storage and resolves their relay waiters only', async () => {
    const { f, outbox, b } = await rig(3);
    outbox.release(b);
    const w = [1, 2, 3].map((s) => outcome(outbox.whenAcknowledged(b, s)));
    outbox.onAck(b, ack(2));
    await settle();
    expect(w.map((x) => x.value)).toEqual(['resolved', 'resolved', 'pending']);
    expect(b.outbox.map((o) => o.originSeq)).toEqual([3]);
    expect(f.storage.peekMeta('b').outbox.map((o) => o.originSeq)).toEqual([3]);
    expect(b.ackedUpTo).toBe(2);
    expect(await outbox.whenAcknowledged(b, 1)).toBeUndefined(); // already acknowledged: at once
  });

  it('an ack that rejects some ops fails those writes with the relay code, resolves the rest, and re-joins', async () => {
    const { f, outbox, b, rejoined } = await rig(3);
    b.meta = { ...b.meta, ready: true, checkpoint: 5 };
    await f.storage.commit({ bucket: 'b', meta: b.meta });
    outbox.release(b);
    const w = [1, 2, 3].map((s) => outcome(outbox.whenAcknowledged(b, s)));
    outbox.onAck(b, ack(2, { rejected: [{ originSeq: 2, code: 'CLOCK_DRIFT', message: 'ahead' }] }));
    await settle();
    expect(w.map((x) => x.value)).toEqual(['resolved', 'CLOCK_DRIFT', 'pending']);
    expect(rejoined).toEqual(['b']);
    expect(f.errors).toEqual([{ bucket: 'b', code: 'CLOCK_DRIFT' }]);
    // Stored with the dropped ops: a restart before the re-join ends re-joins, it does not
    // resume holding the refused value.
    expect(f.storage.peekMeta('b').meta).toMatchObject({ ready: false, checkpoint: 0 });
  });

  it('stores a refusal that comes in an ack a later one overtook, and re-joins', async () => {
    const { f, outbox, b, rejoined } = await rig(3);
    b.meta = { ...b.meta, ready: true, checkpoint: 5 };
    await f.storage.commit({ bucket: 'b', meta: b.meta });
    outbox.release(b);
    outbox.onAck(b, ack(3));
    await settle();
    expect(f.storage.peekMeta('b').meta).toMatchObject({ ready: true, checkpoint: 5 });
    // The ack of op 2, refused, arrives after the one of op 3 (simulator seed 6938).
    outbox.onAck(b, ack(2, { rejected: [{ originSeq: 2, code: 'TOMBSTONE_PURGED', message: 'older' }] }));
    await settle();
    expect(rejoined).toEqual(['b']);
    expect(f.storage.peekMeta('b').meta).toMatchObject({ ready: false, checkpoint: 0 });
  });

  it('takes nothing from an ack that says of a refusal it does not list, and re-joins once', async () => {
    const { f, outbox, b, rejoined } = await rig(3);
    b.meta = { ...b.meta, ready: true, checkpoint: 5 };
    await f.storage.commit({ bucket: 'b', meta: b.meta });
    outbox.release(b);
    const w = [1, 2, 3].map((s) => outcome(outbox.whenAcknowledged(b, s)));
    // The ack refusing op 2 is late; the ack of op 3 overtakes it (simulator seed 7145).
    outbox.onAck(b, ack(3, { refusedUpTo: 2 }));
    outbox.onAck(b, ack(3, { refusedUpTo: 2 }));
    await settle();
    expect(w.map((x) => x.value)).toEqual(['pending', 'pending', 'pending']);
    expect(rejoined).toEqual(['b']);
    expect(f.storage.peekMeta('b').meta).toMatchObject({ ready: false, checkpoint: 0 });
    b.meta = { ...b.meta, ready: false, checkpoint: 0 }; // as the re-join does
    // The re-join's subscribed says which: op 2 is refused, the others accepted.
    const refusal = { originSeq: 2, code: 'TOMBSTONE_PURGED' as const, message: 'older' };
    await outbox.reconcile(b, 'e1', 3, [refusal]);
    await settle();
    expect(w.map((x) => x.value)).toEqual(['resolved', 'TOMBSTONE_PURGED', 'resolved']);
    // From then on the same figure is known: acks are taken again.
    outbox.onAck(b, ack(3, { refusedUpTo: 2 }));
    expect(rejoined).toEqual(['b']);
  });

  it('takes a refusal whose ack was lost from the next subscribed, once', async () => {
    const { f, outbox, b, rejoined } = await rig(3);
    b.meta = { ...b.meta, ready: true, checkpoint: 5 };
    await f.storage.commit({ bucket: 'b', meta: b.meta });
    outbox.release(b);
    const w = [1, 2, 3].map((s) => outcome(outbox.whenAcknowledged(b, s)));
    // The connection broke before any ack; the relay refused op 2.
    const refusal = { originSeq: 2, code: 'TOMBSTONE_PURGED' as const, message: 'older' };
    await outbox.reconcile(b, 'e1', 3, [refusal]);
    await settle();
    expect(w.map((x) => x.value)).toEqual(['resolved', 'TOMBSTONE_PURGED', 'resolved']);
    expect(rejoined).toEqual(['b']);
    expect(f.storage.peekMeta('b').meta).toMatchObject({ ready: false, checkpoint: 0, refusedUpTo: 2 });
    // The relay repeats it when the re-join subscribes: old news, no second re-join.
    b.meta = { ...b.meta, ready: true, checkpoint: 9 };
    await outbox.reconcile(b, 'e1', 3, [refusal]);
    expect(rejoined).toEqual(['b']);
  });

  it('takes refusals of the counter epoch before a new one as old news', async () => {
    const { f, outbox, b, rejoined } = await rig(3);
    b.meta = { ...b.meta, ready: true, checkpoint: 5 };
    await f.storage.commit({ bucket: 'b', meta: b.meta });
    await outbox.reconcile(b, 'e1', 0);
    // The bucket was reset to a new epoch; the relay still holds an old refusal of op 1.
    const old = { originSeq: 1, code: 'TOMBSTONE_PURGED' as const, message: 'older' };
    await outbox.reconcile(b, 'e2', 4, [old]);
    await outbox.reconcile(b, 'e2', 4, [old]);
    expect(rejoined).toEqual([]);
    expect(f.storage.peekMeta('b').meta).toMatchObject({ counterEpoch: 'e2', refusedUpTo: 4, ready: true });
  });

  it('takes a refusal of an op a later ack already acknowledged from the next subscribed', async () => {
    const { f, outbox, b, rejoined } = await rig(3);
    b.meta = { ...b.meta, ready: true, checkpoint: 5 };
    outbox.release(b);
    outbox.onAck(b, ack(3)); // the ack refusing op 2 never came
    await settle();
    await outbox.reconcile(b, 'e1', 3, [{ originSeq: 2, code: 'TOMBSTONE_PURGED', message: 'older' }]);
    expect(rejoined).toEqual(['b']);
    expect(f.storage.peekMeta('b').meta).toMatchObject({ ready: false, checkpoint: 0, refusedUpTo: 2 });
  });

  it('a refused push frame fails the writes in flight, not the unsent ones, and stops pushing', async () => {
    const { outbox, b, frames } = await rig(4, { pushBatch: 2, pushWindow: 2 });
    outbox.release(b);
    const w = [1, 2, 3, 4].map((s) => outcome(outbox.whenAcknowledged(b, s)));
    outbox.onError(b, new MittsyncError('FORBIDDEN', 'no write scope'));
    await settle();
    expect(w.map((x) => x.value)).toEqual(['FORBIDDEN', 'FORBIDDEN', 'pending', 'pending']);
    outbox.pump(b);
    expect(frames()).toEqual([[1, 2]]);
    expect(b.outbox).toHaveLength(4); // kept: a new token may let them through
  });

  it('after REPLICATION_REFUSED, tries again while subscribed: pushing resumes once allowed', async () => {
    const { f, outbox, b, frames } = await rig(2, { pushBatch: 2 });
    b.subscribedOk = true;
    outbox.release(b);
    const w = outcome(outbox.whenAcknowledged(b, 2));
    outbox.onError(b, new MittsyncError('REPLICATION_REFUSED', 'in is off'));
    await settle();
    expect(w.value).toBe('REPLICATION_REFUSED');
    expect(b.canPush).toBe(false);
    await f.run(REFUSED_RETRY_MS);
    expect(frames()).toEqual([
      [1, 2],
      [1, 2],
    ]);
    outbox.onAck(b, ack(2));
    await settle();
    expect(b.outbox).toHaveLength(0);
  });

  it('an error that does not refuse a push leaves the writes waiting', async () => {
    const { outbox, b } = await rig(1);
    outbox.release(b);
    const w = outcome(outbox.whenAcknowledged(b, 1));
    outbox.onError(b, new MittsyncError('RATE_LIMITED', 'slow down'));
    await settle();
    expect(w.value).toBe('pending');
    expect(b.canPush).toBe(true);
  });

  it('rejects every waiting write when the replica closes', async () => {
    const { outbox, b } = await rig(2);
    const w = [1, 2].map((s) => outcome(outbox.whenAcknowledged(b, s)));
    outbox.rejectWaiters(b, new MittsyncError('CLOSED', 'closed'));
    await settle();
    expect(w.map((x) => x.value)).toEqual(['CLOSED', 'CLOSED']);
  });

  it('answers a flush marker with the last originSeq issued, after pushing what was unsent', async () => {
    const { f, outbox, b } = await rig(3);
    b.canPush = true;
    outbox.answerMarker(b, 'f1');
    await settle();
    expect(f.sent.map((m) => m.type)).toEqual(['push', 'markerReply']);
    expect(f.sent[1]).toEqual({ type: 'markerReply', bucket: 'b', flushId: 'f1', sent: 3 });
  });

  describe('reconcile', () => {
    it('records the relay epoch its counter belongs to on the first subscription', async () => {
      const { f, outbox, b } = await rig(0);
      b.meta = { ...b.meta, counterEpoch: null };
      await outbox.reconcile(b, 'e1', 0);
      expect(b.meta.counterEpoch).toBe('e1');
      expect(f.storage.peekMeta('b').meta?.counterEpoch).toBe('e1');
    });

    it('same epoch: a higher reception counter acknowledges ops whose ack was lost', async () => {
      const { outbox, b } = await rig(3);
      const w = [1, 2, 3].map((s) => outcome(outbox.whenAcknowledged(b, s)));
      await outbox.reconcile(b, 'e1', 2);
      expect(w.map((x) => x.value)).toEqual(['resolved', 'resolved', 'pending']);
      expect(b.outbox.map((o) => o.originSeq)).toEqual([3]);
    });

    it('same epoch: a lower counter is a stale answer and changes nothing', async () => {
      const { outbox, b } = await rig(3);
      await outbox.reconcile(b, 'e1', 2);
      await outbox.reconcile(b, 'e1', 1);
      expect(b.ackedUpTo).toBe(2);
      expect(b.outbox.map((o) => o.originSeq)).toEqual([3]);
      expect(b.meta.nextOriginSeq).toBe(4);
    });

    it('same epoch: a counter past every op we issued (storage went back) continues after it', async () => {
      const { outbox, b } = await rig(3);
      await outbox.reconcile(b, 'e1', 5);
      expect(b.outbox).toEqual([]);
      expect(b.meta.nextOriginSeq).toBe(6);
    });

    it("a new epoch renumbers unacknowledged ops to follow the relay's counter, keeping their order", async () => {
      const { f, outbox, b, frames } = await rig(3);
      await outbox.reconcile(b, 'e1', 1); // op 1 acknowledged in e1
      const w = outcome(outbox.whenAcknowledged(b, 2));
      await outbox.reconcile(b, 'e2', 0); // restored from a backup without our ops
      expect(b.outbox.map((o) => [o.originSeq, o.key])).toEqual([
        [1, 'k2'],
        [2, 'k3'],
      ]);
      expect(b.meta).toMatchObject({ nextOriginSeq: 3, counterEpoch: 'e2' });
      expect(f.storage.peekMeta('b').outbox.map((o) => o.originSeq)).toEqual([1, 2]);
      expect(f.storage.peekMeta('b').meta).toMatchObject({ nextOriginSeq: 3, counterEpoch: 'e2' });
      outbox.release(b);
      expect(frames()).toEqual([[1, 2]]);
      expect(w.value).toBe('pending');
    });

    it('a new epoch that has some of our ops acknowledges those and renumbers the rest after them', async () => {
      const { outbox, b } = await rig(3);
      const w = [1, 2, 3].map((s) => outcome(outbox.whenAcknowledged(b, s)));
      await outbox.reconcile(b, 'e2', 2);
      await settle();
      expect(w.map((x) => x.value)).toEqual(['resolved', 'resolved', 'pending']);
      expect(b.outbox.map((o) => [o.originSeq, o.key])).toEqual([[3, 'k3']]);
      expect(b.meta.nextOriginSeq).toBe(4);
    });

    it('leaves a contiguous outbox after the counter, in the original key order (property)', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 0, max: 12 }),
          fc.integer({ min: 0, max: 6 }),
          fc.integer({ min: 0, max: 20 }),
          fc.boolean(),
          async (n, ackedFirst, received, newEpoch) => {
            const { outbox, b } = await rig(n);
            await outbox.reconcile(b, 'e1', Math.min(ackedFirst, n));
            const keysBefore = b.outbox.map((o) => o.key);
            await outbox.reconcile(b, newEpoch ? 'e2' : 'e1', received);
            const seqs = b.outbox.map((o: Op) => o.originSeq);
            expect(seqs).toEqual(seqs.map((_, i) => b.ackedUpTo + 1 + i));
            expect(b.meta.nextOriginSeq).toBe(b.ackedUpTo + 1 + b.outbox.length);
            // Only a prefix was acknowledged: what is left is a suffix of what was there.
            expect(keysBefore.slice(keysBefore.length - b.outbox.length)).toEqual(b.outbox.map((o) => o.key));
            if (newEpoch) expect(b.meta.counterEpoch).toBe('e2');
          },
        ),
        { numRuns: 80 },
      );
    });
  });
});
