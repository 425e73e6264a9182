import { describe, expect, it } from 'vitest';
import type { Env } from './env';
import { encodeHlc } from './hlc';
import { BucketHost, type HostConnection } from './host';
import { MemoryHostStore } from './host-store';
import type { Op } from './model';
import type { ServerMessage, SubMsg } from './protocol';

const NOW = 1_700_000_000_000;
const DAY = 24 * 3600 * 1000;

function setup(retainMs = 30 * DAY) {
  let now = NOW;
  const env: Env = {
    now: () => now,
    setTimeout: () => undefined,
    clearTimeout: () => undefined,
    random: () => 0.5,
  };
  const store = new MemoryHostStore();
  const host = new BucketHost({ bucket: 'b', store, env, tombstoneRetainMs: retainMs });
  const conns = new Map<string, HostConnection & { inbox: ServerMessage[] }>();
  const conn = (replicaId: string) => {
    let c = conns.get(replicaId);
    if (c === undefined) {
      const inbox: ServerMessage[] = [];
      c = { id: `c-${replicaId}`, replicaId, canWrite: true, send: (m) => inbox.push(m), inbox };
      conns.set(replicaId, c);
    }
    return c;
  };
  const seqs = new Map<string, number>();
  const write = (origin: string, key: string, kind: 'set' | 'del') => {
    const originSeq = (seqs.get(origin) ?? 0) + 1;
    seqs.set(origin, originSeq);
    const op: Op =
      kind === 'set'
        ? { origin, originSeq, key, kind, value: 1, hlc: encodeHlc(now, originSeq, origin) }
        : { origin, originSeq, key, kind, hlc: encodeHlc(now, originSeq, origin) };
    return host.push(origin, { type: 'push', bucket: 'b', ops: [op] }, conn(origin));
  };
  const sub = (replicaId: string, since: number, subId = 1): ServerMessage | undefined => {
    const c = conn(replicaId);
    const msg: SubMsg = { type: 'sub', bucket: 'b', since, epoch: host.state.epoch, flush: false, subId };
    host.subscribe(c, msg);
    return c.inbox[c.inbox.length - 1];
  };
  const ckpt = (replicaId: string, seq = host.state.head) =>
    host.checkpoint(conn(replicaId), { type: 'ckpt', bucket: 'b', seq });
  return { host, store, conn, write, sub, ckpt, advance: (ms: number) => (now += ms) };
}

describe('distributed tombstone GC', () => {
  it('keeps tombstones bounded while every replica acknowledges (deletes far past any count)', () => {
    const t = setup();
    t.sub('a', 0);
    t.sub('b', 0);
    let most = 0;
    for (let round = 0; round < 200; round++) {
      for (let i = 0; i < 10; i++) t.write('a', `k${round}-${i}`, 'set');
      for (let i = 0; i < 10; i++) t.write('a', `k${round}-${i}`, 'del');
      t.ckpt('a');
      t.ckpt('b');
      most = Math.max(most, t.store.countTombstones());
    }
    expect(t.host.state.head).toBe(4000);
    expect(most).toBeLessThanOrEqual(10);
    expect(t.store.countTombstones()).toBe(0);
  });

  it('holds tombstones for a replica offline a day, which then resumes without reset', () => {
    const t = setup();
    t.sub('a', 0);
    t.sub('off', 0);
    t.write('a', 'x', 'set');
    t.ckpt('off');
    t.host.unsubscribe(t.conn('off'));
    t.advance(DAY);
    for (let i = 0; i < 500; i++) t.write('a', `k${i}`, 'set');
    t.write('a', 'x', 'del');
    t.ckpt('a');
    expect(t.store.countTombstones()).toBe(1);
    expect(t.sub('off', 1, 2)).toMatchObject({ type: 'subscribed', subId: 2 });
    t.ckpt('off');
    expect(t.store.countTombstones()).toBe(0);
    expect(t.host.state.horizon).toBe(502);
  });

  it('drops a replica silent past retention, purges for the others, and resets it with reason retention', () => {
    const t = setup(7 * DAY);
    t.sub('a', 0);
    t.sub('gone', 0);
    t.write('a', 'x', 'set');
    t.ckpt('gone');
    t.host.unsubscribe(t.conn('gone'));
    t.write('a', 'x', 'del');
    t.ckpt('a');
    expect(t.store.countTombstones()).toBe(1); // still held for `gone`
    t.advance(8 * DAY);
    t.write('a', 'y', 'set');
    t.ckpt('a');
    expect(t.store.countTombstones()).toBe(0);
    expect(t.host.replicas.list().find((r) => r.replicaId === 'gone')).toMatchObject({ dropped: true });
    expect(t.sub('gone', 1, 3)).toMatchObject({ type: 'reset', subId: 3, reason: 'retention' });
    // A dropped replica whose checkpoint needs nothing purged still resumes.
    expect(t.sub('gone', 2, 4)).toMatchObject({ type: 'subscribed', subId: 4 });
  });

  it('registers a join at the head it starts from and refuses a checkpoint past the head', () => {
    const t = setup();
    t.write('w', 'a', 'set');
    t.write('w', 'a', 'del');
    t.sub('j', 0);
    // The joiner needs no tombstone below its start: only it is registered, so they go now.
    t.write('w', 'b', 'set');
    expect(t.store.countTombstones()).toBe(0);
    t.ckpt('j', 99);
    expect(t.conn('j').inbox[t.conn('j').inbox.length - 1]).toMatchObject({
      type: 'error',
      code: 'BAD_MESSAGE',
    });
  });

  it('holds every tombstone while no replica is known, for clients that page without subscribing', () => {
    const t = setup();
    for (let i = 0; i < 50; i++) t.write('w', `k${i}`, 'set');
    for (let i = 0; i < 50; i++) t.write('w', `k${i}`, 'del');
    expect(t.store.countTombstones()).toBe(50);
  });
});
