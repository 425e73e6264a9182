import { CLOSE_CODES, decodeFrame, encodeFrame, PROTOCOL_VERSION, type ServerMessage } from '@mittsync/core';
import { encodeHlc } from '@mittsync/core/model';
import { describe, expect, it } from 'vitest';
import { createAuthenticator, principalFromClaims } from './auth';
import type { RelayLimits } from './limits';
import { parseMetrics } from './metrics';
import { SqliteDriver } from './node/sqlite-driver';
import { Relay, sqlStores } from './relay';
import type { RelaySocket, SocketHandler } from './session-host';

class FakeSocket implements RelaySocket {
  readonly frames: ServerMessage[] = [];
  closed: { code: number; reason: string } | undefined;
  bufferedAmount = 0;
  /** Set to observe state at the moment of each send. */
  onSend: ((msg: ServerMessage) => void) | undefined;

  send(frame: Uint8Array | string): void {
    const msg = decodeFrame(
      typeof frame === 'string' ? new TextEncoder().encode(frame) : frame,
      typeof frame === 'string' ? 'json' : 'msgpack',
    ) as ServerMessage;
    this.onSend?.(msg);
    this.frames.push(msg);
  }

  close(code: number, reason: string): void {
    this.closed ??= { code, reason };
  }

  of<T extends ServerMessage['type']>(type: T): Extract<ServerMessage, { type: T }>[] {
    return this.frames.filter((m) => m.type === type) as Extract<ServerMessage, { type: T }>[];
  }
}

function setup(
  limits: Partial<RelayLimits> = {},
  extra: { maxResidentBuckets?: number; driver?: SqliteDriver } = {},
) {
  const driver = extra.driver ?? new SqliteDriver(':memory:');
  const pending: (() => void)[] = [];
  const relay = new Relay({
    stores: sqlStores(driver),
    auth: createAuthenticator({ secret: 'unit-test-secret-unit-test-secret!!' }),
    limits,
    schedule: (fn) => pending.push(fn),
    ...(extra.maxResidentBuckets === undefined ? {} : { maxResidentBuckets: extra.maxResidentBuckets }),
  });
  /** Runs the scheduled group commits, as the event loop would. */
  const tick = () => {
    for (const fn of pending.splice(0)) fn();
  };
  const connect = (sub: string, scopes: { read?: string[]; write?: string[] } = {}) => {
    const socket = new FakeSocket();
    const principal = principalFromClaims({
      sub,
      exp: Math.floor(Date.now() / 1000) + 3600,
      mittsync: { read: scopes.read ?? ['*'], write: scopes.write ?? ['*'] },
    });
    const handler: SocketHandler = relay.accept(socket, { address: '10.0.0.1', principal });
    const send = (msg: unknown) => handler.message(encodeFrame(msg), false);
    send({ type: 'hello', v: PROTOCOL_VERSION, replicaId: sub });
    // originSeq counts per bucket.
    const seqs = new Map<string, number>();
    let tick = 0;
    const op = (bucket: string, key: string, value: unknown = 1) => {
      const originSeq = (seqs.get(bucket) ?? 0) + 1;
      seqs.set(bucket, originSeq);
      return { origin: sub, originSeq, key, kind: 'set', value, hlc: encodeHlc(Date.now(), ++tick, sub) };
    };
    return { socket, handler, send, op };
  };
  return { relay, driver, tick, connect, pending };
}

describe('Relay', () => {
  it('commits pushes of several sockets and buckets in one transaction, and sends nothing before it commits', () => {
    const { relay, driver, tick, connect } = setup();
    const a = connect('a');
    const b = connect('b');
    const watcher = connect('w');
    watcher.send({ type: 'sub', bucket: 'one', since: 0, flush: false, subId: 1 });
    for (const c of [a, b, watcher]) {
      c.socket.onSend = (m) => {
        if (m.type === 'ack' || m.type === 'deliver') expect(driver.inTransaction).toBe(false);
      };
    }
    a.send({ type: 'push', bucket: 'one', ops: [a.op('one', 'x')] });
    b.send({ type: 'push', bucket: 'two', ops: [b.op('two', 'y')] });
    b.send({ type: 'push', bucket: 'one', ops: [b.op('one', 'z')] });
    // Queued, not committed: no ack, no delivery yet.
    expect(a.socket.of('ack')).toEqual([]);
    expect(watcher.socket.of('deliver')).toEqual([]);
    tick();
    expect(relay.metrics.commits).toBe(1);
    expect(a.socket.of('ack')).toEqual([expect.objectContaining({ bucket: 'one', upTo: 1 })]);
    expect(b.socket.of('ack').map((m) => m.bucket)).toEqual(['two', 'one']);
    expect(watcher.socket.of('deliver').flatMap((d) => d.ops.map((o) => o.key))).toEqual(['x', 'z']);
  });

  it('rolls the whole batch back when the commit fails: no ack, subscribers resync, and it recovers', () => {
    const { relay, driver, tick, connect } = setup();
    const w = connect('w');
    w.send({ type: 'sub', bucket: 'b', since: 0, flush: false, subId: 1 });
    w.send({ type: 'push', bucket: 'b', ops: [w.op('b', 'k1')] });
    tick();
    expect(w.socket.of('ack')).toHaveLength(1);
    const real = driver.transaction.bind(driver);
    let depth = 0;
    let failOuter = true;
    // The outermost transaction (the group commit) fails after its pushes ran: a disk error at COMMIT.
    driver.transaction = <T>(fn: () => T): T => {
      depth++;
      try {
        return real(() => {
          const out = fn();
          if (depth === 1 && failOuter) {
            failOuter = false;
            throw new Error('disk I/O error');
          }
          return out;
        });
      } finally {
        depth--;
      }
    };
    w.send({ type: 'push', bucket: 'b', ops: [w.op('b', 'k2')] });
    tick();
    expect(w.socket.of('ack')).toHaveLength(1);
    expect(w.socket.of('error').at(-1)).toMatchObject({ code: 'STORAGE_UNAVAILABLE' });
    expect(w.socket.of('resync')).toEqual([
      expect.objectContaining({ bucket: 'b', reason: 'STORAGE_UNAVAILABLE' }),
    ]);
    driver.transaction = real;
    // The host reloads from storage: head 1, and the re-pushed op commits as seq 2.
    w.send({
      type: 'sub',
      bucket: 'b',
      since: 1,
      epoch: w.socket.of('subscribed')[0]?.epoch,
      flush: false,
      subId: 2,
    });
    expect(w.socket.of('subscribed').at(-1)).toMatchObject({ from: 2, received: 1 });
    w.send({ type: 'push', bucket: 'b', ops: [{ ...w.op('b', 'k2'), originSeq: 2 }] });
    tick();
    expect(w.socket.of('ack').at(-1)).toMatchObject({ upTo: 2, seq: 2 });
    expect(relay.residentCount).toBe(1);
  });

  it('keeps at most maxResidentBuckets idle hosts in memory and reloads evicted ones intact', () => {
    const { relay, tick, connect } = setup({}, { maxResidentBuckets: 5 });
    const w = connect('w');
    for (let i = 0; i < 40; i++) w.send({ type: 'push', bucket: `b${i}`, ops: [w.op(`b${i}`, `k${i}`, i)] });
    tick();
    expect(relay.residentCount).toBeLessThanOrEqual(5);
    const r = connect('r');
    r.send({ type: 'pageReq', bucket: 'b3', reqId: 1, since: 0, limit: 10 });
    expect(r.socket.of('page')[0]?.entries).toEqual([
      expect.objectContaining({ key: 'k3', value: 3, seq: 1 }),
    ]);
    // Subscribed buckets are never evicted.
    for (let i = 0; i < 8; i++) r.send({ type: 'sub', bucket: `b${i}`, since: 0, flush: false, subId: i });
    for (let i = 10; i < 30; i++) r.send({ type: 'pageReq', bucket: `b${i}`, reqId: i, since: 0, limit: 1 });
    expect(relay.residentCount).toBeGreaterThanOrEqual(8);
    expect(relay.residentCount).toBeLessThanOrEqual(9);
  });

  it('rate-limits ops per connection: refuses frames past the allowance, closes a sustained abuser with 4008', () => {
    const { tick, connect } = setup({ opsPerConnectionPerSecond: 100 });
    const c = connect('c');
    c.send({ type: 'push', bucket: 'b', ops: Array.from({ length: 90 }, (_, i) => c.op('b', `k${i}`)) });
    c.send({ type: 'push', bucket: 'b', ops: Array.from({ length: 50 }, (_, i) => c.op('b', `x${i}`)) });
    tick();
    expect(c.socket.of('ack')).toHaveLength(1);
    expect(c.socket.of('error')).toEqual([expect.objectContaining({ code: 'RATE_LIMITED', bucket: 'b' })]);
    for (let i = 0; i < 300 && c.socket.closed === undefined; i++) c.send({ type: 'ping', id: i });
    expect(c.socket.closed?.code).toBe(CLOSE_CODES.RATE_LIMITED);
  });

  it('closes a socket whose outbound queue passes twice the limit with 4010, and drops slow subscribers first', () => {
    const { tick, connect } = setup({ maxOutboundBytes: 1000 });
    const slow = connect('slow');
    slow.send({ type: 'sub', bucket: 'b', since: 0, flush: false, subId: 1 });
    const w = connect('w');
    slow.socket.bufferedAmount = 1500;
    w.send({ type: 'push', bucket: 'b', ops: [w.op('b', 'k')] });
    tick();
    expect(slow.socket.of('resync')).toEqual([expect.objectContaining({ reason: 'SLOW_CONSUMER' })]);
    slow.socket.bufferedAmount = 2500;
    slow.send({ type: 'ping', id: 1 });
    expect(slow.socket.closed?.code).toBe(CLOSE_CODES.SLOW_CONSUMER);
  });

  it('commits queued pushes and acks them before closing every socket with 1012 on shutdown', () => {
    const { relay, connect } = setup();
    const w = connect('w');
    w.send({ type: 'push', bucket: 'b', ops: [w.op('b', 'k')] });
    relay.close();
    expect(w.socket.of('ack')).toEqual([expect.objectContaining({ upTo: 1 })]);
    expect(w.socket.closed?.code).toBe(1012);
    expect(relay.closed).toBe(true);
  });

  it('counts frames, ops, commits and rejections in the Prometheus text', () => {
    const { relay, tick, connect } = setup();
    const w = connect('w');
    w.send({ type: 'push', bucket: 'b', ops: [w.op('b', 'a'), w.op('b', 'b')] });
    w.handler.message(new Uint8Array([0x92]), false);
    tick();
    const m = parseMetrics(relay.metrics.render());
    expect(m.get('mittsync_connections')).toBe(1);
    expect(m.get('mittsync_ops_in_total')).toBe(2);
    expect(m.get('mittsync_ops_applied_total')).toBe(2);
    expect(m.get('mittsync_commit_seconds_count')).toBe(1);
    expect(m.get('mittsync_rejections_total{code="BAD_FRAME"}')).toBe(1);
    expect(m.get('mittsync_resident_buckets')).toBe(1);
  });

  it('closes a socket that never says hello (4000)', async () => {
    const { relay } = setup({ helloTimeoutMs: 20 });
    const quiet = new FakeSocket();
    const principal = principalFromClaims({ sub: 'q', exp: Math.floor(Date.now() / 1000) + 60 });
    relay.accept(quiet, { address: 'x', principal });
    await new Promise((r) => setTimeout(r, 50));
    expect(quiet.closed?.code).toBe(CLOSE_CODES.PROTOCOL);
  });
});
