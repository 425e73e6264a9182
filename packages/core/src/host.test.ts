import { describe, expect, it } from 'vitest';
import type { Env } from './env';
import { encodeHlc } from './hlc';
import { BucketHost, type HostConnection } from './host';
import { MemoryHostStore } from './host-store';
import type { Op } from './model';
import type { ServerMessage } from './protocol';

const NOW = 1_700_000_000_000;

function setup(opts: { retainOps?: number; retainMs?: number; maxPageBytes?: number } = {}) {
  let now = NOW;
  const timers: (() => void)[] = [];
  const env: Env = {
    now: () => now,
    setTimeout: (fn) => timers.push(fn),
    clearTimeout: () => undefined,
    random: () => 0.5,
  };
  const store = new MemoryHostStore();
  const host = new BucketHost({
    bucket: 'b',
    store,
    env,
    flushTimeoutMs: 100,
    tombstoneRetainOps: opts.retainOps ?? 1_000_000,
    tombstoneRetainMs: opts.retainMs ?? 0,
    ...(opts.maxPageBytes === undefined ? {} : { maxPageBytes: opts.maxPageBytes }),
  });
  const conn = (replicaId: string, canWrite = true) => {
    const inbox: ServerMessage[] = [];
    const c: HostConnection & { inbox: ServerMessage[] } = {
      id: `c-${replicaId}`,
      replicaId,
      canWrite,
      send: (m) => inbox.push(m),
      inbox,
    };
    return c;
  };
  return {
    host,
    store,
    conn,
    fireTimers: () => {
      for (const f of timers.splice(0)) f();
    },
    advance: (ms: number) => (now += ms),
  };
}

const set = (
  origin: string,
  originSeq: number,
  key: string,
  wall: number,
  value: unknown = originSeq,
): Op => ({
  origin,
  originSeq,
  key,
  kind: 'set',
  value: value as Op['value'],
  hlc: encodeHlc(wall, 0, origin),
});
const del = (origin: string, originSeq: number, key: string, wall: number): Op => ({
  origin,
  originSeq,
  key,
  kind: 'del',
  hlc: encodeHlc(wall, 0, origin),
});

describe('BucketHost', () => {
  it('assigns contiguous seqs, acks after commit and fans out to subscribers', () => {
    const { host, store, conn } = setup();
    const a = conn('rA');
    const b = conn('rB');
    host.subscribe(b, { type: 'sub', bucket: 'b', since: 0, flush: false, subId: 1 });
    const ack = host.push(
      'rA',
      { type: 'push', bucket: 'b', ops: [set('rA', 1, 'x', NOW), set('rA', 2, 'y', NOW)] },
      a,
    );
    expect(ack).toMatchObject({ upTo: 2, seq: 2 });
    expect(store.getEntry('x')?.seq).toBe(1);
    const deliver = b.inbox.find((m) => m.type === 'deliver');
    expect(deliver?.type === 'deliver' && deliver.ops.map((o) => o.seq)).toEqual([1, 2]);
  });

  it('scenario 9: a re-pushed frame (its ack was lost) is deduped by (origin, originSeq)', () => {
    const { host, conn } = setup();
    const a = conn('rA');
    const frame = { type: 'push' as const, bucket: 'b', ops: [set('rA', 1, 'x', NOW)] };
    host.push('rA', frame, a);
    const again = host.push('rA', frame, a);
    expect(again.upTo).toBe(1);
    expect(host.state.head).toBe(1);
  });

  it('refuses to skip an originSeq: a frame after a gap is acked up to the gap only', () => {
    const { host, conn } = setup();
    const ack = host.push('rA', { type: 'push', bucket: 'b', ops: [set('rA', 2, 'x', NOW)] }, conn('rA'));
    expect(ack).toMatchObject({ upTo: 0, gap: true });
    expect(host.state.head).toBe(0);
  });

  it('rejects ops whose origin is not the connection replica, and commits nothing of the frame', () => {
    const { host, conn } = setup();
    const a = conn('rA');
    host.push('rA', { type: 'push', bucket: 'b', ops: [set('rA', 1, 'x', NOW), set('rB', 1, 'y', NOW)] }, a);
    expect(a.inbox.find((m) => m.type === 'error')).toMatchObject({ code: 'ORIGIN_MISMATCH' });
    expect(host.state.head).toBe(0);
  });

  it('scenario 22: an op an hour ahead is rejected with CLOCK_DRIFT and never wins', () => {
    const { host, store, conn } = setup();
    const a = conn('rA');
    const ack = host.push('rA', { type: 'push', bucket: 'b', ops: [set('rA', 1, 'x', NOW + 3_600_000)] }, a);
    expect(ack.upTo).toBe(1); // consumed, so later ops are not blocked
    expect(ack.rejected).toEqual([expect.objectContaining({ originSeq: 1, code: 'CLOCK_DRIFT' })]);
    expect(store.getEntry('x')).toBeUndefined();
  });

  it('keeps the newer version when an older write arrives later (LWW at the relay)', () => {
    const { host, store, conn } = setup();
    host.push('rA', { type: 'push', bucket: 'b', ops: [set('rA', 1, 'x', NOW, 'new')] }, conn('rA'));
    host.push('rB', { type: 'push', bucket: 'b', ops: [set('rB', 1, 'x', NOW - 10, 'old')] }, conn('rB'));
    expect(store.getEntry('x')?.value).toBe('new');
    expect(host.state.head).toBe(1);
  });

  it('scenario 19: a resume from before the tombstone horizon gets an explicit reset', () => {
    const { host, conn } = setup({ retainOps: 2 });
    const a = conn('rA');
    host.push(
      'rA',
      { type: 'push', bucket: 'b', ops: [set('rA', 1, 'x', NOW - 10), del('rA', 2, 'x', NOW - 9)] },
      a,
    );
    for (let i = 3; i <= 8; i++)
      host.push('rA', { type: 'push', bucket: 'b', ops: [set('rA', i, `k${i}`, NOW - 8 + i)] }, a);
    // The horizon is the greatest seq of a purged tombstone: x's delete, at seq 2.
    expect(host.state.horizon).toBe(2);
    const r = conn('rR');
    host.subscribe(r, {
      type: 'sub',
      bucket: 'b',
      since: 1,
      epoch: host.state.epoch,
      flush: false,
      subId: 7,
    });
    expect(r.inbox).toEqual([
      { type: 'reset', bucket: 'b', subId: 7, epoch: host.state.epoch, reason: 'horizon' },
    ]);
    host.subscribe(r, { type: 'sub', bucket: 'b', since: 5, epoch: 'other', flush: false, subId: 8 });
    expect(r.inbox[1]).toMatchObject({ type: 'reset', reason: 'epoch' });
    // A checkpoint at the purged tombstone needs nothing purged: it resumes.
    host.subscribe(r, {
      type: 'sub',
      bucket: 'b',
      since: 2,
      epoch: host.state.epoch,
      flush: false,
      subId: 9,
    });
    expect(r.inbox[2]).toMatchObject({ type: 'subscribed', subId: 9 });
  });

  it('scenario 14: deleted data never resurrects after its tombstone is purged', () => {
    const { host, store, conn } = setup({ retainOps: 2 });
    const a = conn('rA');
    host.push('rA', { type: 'push', bucket: 'b', ops: [del('rA', 1, 'gone', NOW - 5)] }, a);
    for (let i = 2; i <= 7; i++)
      host.push('rA', { type: 'push', bucket: 'b', ops: [set('rA', i, `k${i}`, NOW - 5 + i)] }, a);
    expect(store.getEntry('gone')).toBeUndefined(); // purged
    // A replica offline since before the delete pushes an old write to that key:
    // It cannot be decided (the key's delete was forgotten): refused, not turned into a delete.
    const ack = host.push(
      'rO',
      { type: 'push', bucket: 'b', ops: [set('rO', 1, 'gone', NOW - 100, 'zombie')] },
      conn('rO'),
    );
    expect(ack).toMatchObject({ upTo: 1, rejected: [{ originSeq: 1, code: 'TOMBSTONE_PURGED' }] });
    expect(store.getEntry('gone')).toBeUndefined();
    // A write newer than every purged tombstone of its slot is accepted; its ack still says
    // which op was refused last, for a replica that has not had that ack.
    const next = host.push(
      'rO',
      { type: 'push', bucket: 'b', ops: [set('rO', 2, 'gone', NOW, 'back')] },
      conn('rO'),
    );
    expect(store.getEntry('gone')).toMatchObject({ value: 'back' });
    expect(next).toMatchObject({ upTo: 2, refusedUpTo: 1 });
    expect(next).not.toHaveProperty('rejected');
    expect(
      host.push('rA', { type: 'push', bucket: 'b', ops: [set('rA', 8, 'k8', NOW)] }, a),
    ).not.toHaveProperty('refusedUpTo');
    // The refusal is repeated when the replica subscribes again: its ack may have been lost
    // with its connection, and `received` alone would make the op look accepted.
    const again = conn('rO');
    host.subscribe(again, { type: 'sub', bucket: 'b', since: 0, flush: false, subId: 1 });
    expect(again.inbox.find((m) => m.type === 'subscribed')).toMatchObject({
      received: 2,
      rejected: [{ originSeq: 1, code: 'TOMBSTONE_PURGED' }],
    });
    const other = conn('rA');
    host.subscribe(other, { type: 'sub', bucket: 'b', since: 0, flush: false, subId: 1 });
    expect(other.inbox.find((m) => m.type === 'subscribed')).not.toHaveProperty('rejected');
    // A relay restarted since (a new host on the same store) still says it.
    const env: Env = {
      now: () => NOW,
      setTimeout: () => 0,
      clearTimeout: () => undefined,
      random: () => 0.5,
    };
    const restarted = new BucketHost({ bucket: 'b', store, env, tombstoneRetainOps: 2 });
    const later = conn('rO');
    restarted.subscribe(later, { type: 'sub', bucket: 'b', since: 0, flush: false, subId: 2 });
    expect(later.inbox.find((m) => m.type === 'subscribed')).toMatchObject({
      received: 2,
      rejected: [{ originSeq: 1, code: 'TOMBSTONE_PURGED' }],
    });
  });

  it("re-announces a tombstone that beat a set, so the set's writer converges on it", () => {
    const { host, conn } = setup();
    const w = conn('rW');
    host.subscribe(w, { type: 'sub', bucket: 'b', since: 0, flush: false, subId: 1 });
    host.push('rA', { type: 'push', bucket: 'b', ops: [del('rA', 1, 'k', NOW)] }, conn('rA'));
    host.push('rW', { type: 'push', bucket: 'b', ops: [set('rW', 1, 'k', NOW - 1)] }, w);
    const delivered = w.inbox.flatMap((m) => (m.type === 'deliver' ? m.ops : []));
    expect(delivered.map((o) => [o.key, o.kind, o.seq])).toEqual([
      ['k', 'del', 1],
      ['k', 'del', 2],
    ]);
    // The re-announcement names the tombstone it repeats as the key's previous state.
    expect(delivered.map((o) => o.prev)).toEqual([null, { hlc: encodeHlc(NOW, 0, 'rA'), deleted: true }]);
  });

  it("delivers each op with the key's previous state on the relay, and pages with the head they were read at", () => {
    const { host, conn } = setup();
    const w = conn('rW');
    host.subscribe(w, { type: 'sub', bucket: 'b', since: 0, flush: false, subId: 1 });
    const a = conn('rA');
    host.push('rA', { type: 'push', bucket: 'b', ops: [set('rA', 1, 'k', NOW), set('rA', 2, 'j', NOW)] }, a);
    const page = host.page({ type: 'pageReq', bucket: 'b', reqId: 1, since: 0, limit: 10 });
    expect(page.type === 'page' && page.head).toBe(2);
    host.push(
      'rA',
      { type: 'push', bucket: 'b', ops: [set('rA', 3, 'k', NOW + 1), del('rA', 4, 'k', NOW + 2)] },
      a,
    );
    host.push('rA', { type: 'push', bucket: 'b', ops: [set('rA', 5, 'k', NOW + 3)] }, a);
    const delivered = w.inbox.flatMap((m) => (m.type === 'deliver' ? m.ops : []));
    expect(delivered.map((o) => [o.key, o.seq, o.prev])).toEqual([
      ['k', 1, null],
      ['j', 2, null],
      ['k', 3, { hlc: encodeHlc(NOW, 0, 'rA') }],
      ['k', 4, { hlc: encodeHlc(NOW + 1, 0, 'rA') }],
      ['k', 5, { hlc: encodeHlc(NOW + 2, 0, 'rA'), deleted: true }],
    ]);
  });

  describe('state flush', () => {
    it("waits until every connected writer's reception counter reaches what it reports", () => {
      const { host, conn } = setup();
      const w1 = conn('rW1');
      const w2 = conn('rW2');
      const reader = conn('rR', false);
      for (const c of [w1, w2, reader])
        host.subscribe(c, { type: 'sub', bucket: 'b', since: 0, flush: false, subId: 1 });
      const j = conn('rJ');
      host.subscribe(j, { type: 'sub', bucket: 'b', since: 0, flush: true, subId: 2 });
      const marker = w1.inbox.find((m) => m.type === 'marker');
      expect(marker).toBeDefined();
      expect(reader.inbox.some((m) => m.type === 'marker')).toBe(false);
      const flushId = marker?.type === 'marker' ? marker.flushId : '';
      host.markerReply(w1, { type: 'markerReply', bucket: 'b', flushId, sent: 2 });
      host.markerReply(w2, { type: 'markerReply', bucket: 'b', flushId, sent: 0 });
      expect(j.inbox.some((m) => m.type === 'flushed')).toBe(false); // rW1 has 2 ops in flight
      host.push(
        'rW1',
        { type: 'push', bucket: 'b', ops: [set('rW1', 1, 'a', NOW), set('rW1', 2, 'b', NOW)] },
        w1,
      );
      const flushed = j.inbox.find((m) => m.type === 'flushed');
      expect(flushed).toMatchObject({ seq: 2, missed: [] });
      expect(flushed?.type === 'flushed' && [...flushed.covered].sort()).toEqual(['rW1', 'rW2']);
    });

    it('reports writers that disconnect or time out instead of waiting forever', () => {
      const { host, conn, fireTimers } = setup();
      const w1 = conn('rW1');
      const w2 = conn('rW2');
      for (const c of [w1, w2])
        host.subscribe(c, { type: 'sub', bucket: 'b', since: 0, flush: false, subId: 1 });
      const j = conn('rJ');
      host.subscribe(j, { type: 'sub', bucket: 'b', since: 0, flush: true, subId: 2 });
      host.unsubscribe(w1);
      fireTimers();
      expect(j.inbox.find((m) => m.type === 'flushed')).toMatchObject({
        covered: [],
        missed: [
          { replicaId: 'rW1', reason: 'disconnected' },
          { replicaId: 'rW2', reason: 'timeout' },
        ],
      });
    });
  });

  it('serves pages by key range, in key order, with a cursor', () => {
    const { host, conn } = setup();
    const ops = ['d', 'a', 'c', 'b', 'e'].map((k, i) => set('rA', i + 1, k, NOW));
    host.push('rA', { type: 'push', bucket: 'b', ops }, conn('rA'));
    const p1 = host.page({ type: 'pageReq', bucket: 'b', reqId: 1, since: 0, limit: 2 });
    expect(p1.type === 'page' && [p1.entries.map((e) => e.key), p1.next]).toEqual([['a', 'b'], 'b']);
    const p2 = host.page({
      type: 'pageReq',
      bucket: 'b',
      reqId: 2,
      since: 0,
      after: 'b',
      until: 'd',
      limit: 10,
    });
    expect(p2.type === 'page' && [p2.entries.map((e) => e.key), p2.next]).toEqual([['c', 'd'], null]);
    const changed = host.page({ type: 'pageReq', bucket: 'b', reqId: 3, since: 3, limit: 10 });
    expect(changed.type === 'page' && changed.entries.map((e) => e.key)).toEqual(['b', 'e']);
  });

  it('ends a page at the first entry past its byte budget and continues from there', () => {
    const { host, conn } = setup({ maxPageBytes: 10_000 });
    const big = 'x'.repeat(3_000);
    const ops = Array.from({ length: 200 }, (_, i) => ({
      ...set('rA', i + 1, `k${String(i).padStart(3, '0')}`, NOW),
      value: big,
    }));
    host.push('rA', { type: 'push', bucket: 'b', ops }, conn('rA'));
    const keys: string[] = [];
    let after: string | undefined;
    for (let i = 0; i < 200; i++) {
      const p = host.page({
        type: 'pageReq',
        bucket: 'b',
        reqId: i,
        since: 0,
        limit: 10_000,
        ...(after ? { after } : {}),
      });
      if (p.type !== 'page') throw new Error(p.type);
      // 3 values of ~3 kB stay under 10 kB; the 4th takes the page past it and ends it.
      expect(p.entries.length).toBeLessThanOrEqual(4);
      keys.push(...p.entries.map((e) => e.key));
      if (p.next === null) break;
      after = p.next;
    }
    expect(keys).toEqual(ops.map((o) => o.key));
  });

  it('reads a page of small values whole, past its first scan', () => {
    const { host, conn } = setup({ maxPageBytes: 1024 * 1024 });
    const ops = Array.from({ length: 300 }, (_, i) =>
      set('rA', i + 1, `k${String(i).padStart(3, '0')}`, NOW),
    );
    host.push('rA', { type: 'push', bucket: 'b', ops }, conn('rA'));
    const p = host.page({ type: 'pageReq', bucket: 'b', reqId: 1, since: 0, limit: 250 });
    expect(p.type === 'page' && [p.entries.length, p.next]).toEqual([250, 'k249']);
    const rest = host.page({ type: 'pageReq', bucket: 'b', reqId: 2, since: 0, after: 'k249', limit: 250 });
    expect(rest.type === 'page' && [rest.entries.length, rest.next]).toEqual([50, null]);
  });

  it('refuses a push on a readOnly or copy subscription with READ_ONLY, consuming nothing', () => {
    const { host, store, conn } = setup();
    for (const policy of ['readOnly', 'copy'] as const) {
      const r = conn(`r-${policy}`);
      host.subscribe(r, { type: 'sub', bucket: 'b', since: 0, flush: false, subId: 1, policy });
      r.inbox.length = 0;
      const head = host.state.head;
      const key = `k-${policy}`;
      const ack = host.push(
        r.replicaId,
        { type: 'push', bucket: 'b', ops: [set(r.replicaId, 1, key, NOW)] },
        r,
      );
      expect(ack.upTo).toBe(0);
      expect(r.inbox).toMatchObject([{ type: 'error', code: 'READ_ONLY', bucket: 'b' }]);
      expect(store.getEntry(key)).toBeUndefined();
      expect(store.getReceived(r.replicaId)).toBe(0);
      expect(host.state.head).toBe(head);
      // A new `sub` as a replica on the same connection writes again.
      host.subscribe(r, { type: 'sub', bucket: 'b', since: 0, flush: false, subId: 2 });
      expect(
        host.push(r.replicaId, { type: 'push', bucket: 'b', ops: [set(r.replicaId, 1, key, NOW)] }, r).upTo,
      ).toBe(1);
    }
  });

  it('leaves readOnly and copy subscribers out of a state flush', () => {
    const { host, conn } = setup();
    const ro = conn('ro');
    const w = conn('w');
    host.subscribe(ro, { type: 'sub', bucket: 'b', since: 0, flush: false, subId: 1, policy: 'readOnly' });
    host.subscribe(w, { type: 'sub', bucket: 'b', since: 0, flush: false, subId: 1 });
    const j = conn('j');
    host.subscribe(j, { type: 'sub', bucket: 'b', since: 0, flush: true, subId: 1, policy: 'copy' });
    expect(ro.inbox.some((m) => m.type === 'marker')).toBe(false);
    expect(w.inbox.some((m) => m.type === 'marker')).toBe(true);
  });
});
