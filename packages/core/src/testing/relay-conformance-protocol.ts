import { describe, expect, it } from 'vitest';
import { encodeFrame, PACKED_OPS } from '../codec';
import { columnEntries, type EntryColumns } from '../columns';
import { packOps } from '../op-pack';
import { PROTOCOL_VERSION } from '../protocol';
import { RawClient } from './raw-client';
import { type RelayUnderTest, rawClient, sleep, uniq } from './relay-harness';

/** Protocol round trips, dedupe, resume, reset, the state flush and malformed frames. */
export function protocolTests(ctx: { relay: RelayUnderTest }): void {
  describe('protocol', () => {
    it('answers hello with welcome, the protocol version and its limits', async () => {
      const sub = uniq('w');
      const token = await ctx.relay.makeToken({ sub, read: ['*'], write: ['*'] });
      const { client, welcome } = await RawClient.open(ctx.relay, token, sub);
      expect(welcome.v).toBe(PROTOCOL_VERSION);
      for (const v of Object.values(welcome.limits)) expect(v).toBeGreaterThan(0);
      client.close();
    });

    it('subscribes at head + 1 and streams every later op, in seq order, to every subscriber', async () => {
      const bucket = uniq('b');
      const a = await rawClient(ctx.relay);
      const b = await rawClient(ctx.relay);
      a.send({ type: 'push', bucket, ops: [a.op('k0', 0)] });
      await a.next('ack');
      b.send({ type: 'sub', bucket, since: 0, flush: false, subId: 7 });
      const subd = await b.next('subscribed');
      expect(subd.subId).toBe(7);
      expect(subd.from).toBe(2);
      a.send({
        type: 'push',
        bucket,
        ops: [a.op('k1', 1), a.op('k2', { x: [1, 'two'] }), a.op('k1', null, 'del')],
      });
      const ack = await a.next('ack');
      expect(ack.upTo).toBe(4);
      expect(ack.seq).toBe(4);
      const d = await b.next('deliver');
      expect(d.ops.map((o) => o.seq)).toEqual([2, 3, 4]);
      expect(d.ops[1]?.value).toEqual({ x: [1, 'two'] });
      expect(d.ops[2]?.kind).toBe('del');
      expect(d.sum.count).toBe(2); // k0 and k2 live
      a.close();
      b.close();
    });

    it('sends packed delivers to a client that asks for them, tuples to others, and reads packed pushes', async () => {
      const bucket = uniq('packed');
      const sub = uniq('pk');
      const token = await ctx.relay.makeToken({ sub, read: ['*'], write: ['*'] });
      const { client: a, welcome } = await RawClient.open(ctx.relay, token, sub, { packOps: true });
      expect(welcome.packOps).toBe(PACKED_OPS);
      const b = await rawClient(ctx.relay);
      for (const c of [a, b]) {
        c.send({ type: 'sub', bucket, since: 0, flush: false, subId: 1 });
        await c.next('subscribed');
      }
      const ops = [a.op('k1', { x: [1, 'two'] }), a.op('k2', 'é日😀'), a.op('k1', null, 'del')];
      a.send({ type: 'push', bucket, ops }); // packed: the welcome said the relay reads them
      expect((await a.next('ack')).upTo).toBe(3);
      const [da, db] = [await a.next('deliver'), await b.next('deliver')];
      expect(a.delivers).toEqual({ packed: 1, tuples: 0 });
      expect(b.delivers).toEqual({ packed: 0, tuples: 1 });
      expect(da).toEqual(db);
      expect(da.ops.map((o) => [o.key, o.kind, o.value, o.seq, o.originSeq, o.hlc])).toEqual(
        ops.map((o, i) => [o.key, o.kind, o.value, i + 1, o.originSeq, o.hlc]),
      );
      expect(da.ops[2]?.prev).toEqual({ hlc: ops[0]?.hlc });
      a.close();
      b.close();
    });

    it('refuses malformed packed pushes with typed errors and keeps serving the socket', async () => {
      const c = await rawClient(ctx.relay);
      const bucket = uniq('badpack');
      const good = packOps([c.op('kk', 'v')], false) as Uint8Array;
      const badKey = good.slice();
      badKey[good.length - 4] = 0xff; // the key's first byte (then 'k', then the value 'v')
      const cases: [Uint8Array, string][] = [
        [good.slice(0, good.length - 1), 'BAD_FRAME'], // truncated
        [new Uint8Array([...good, 7]), 'BAD_FRAME'], // bytes left over
        [badKey, 'BAD_MESSAGE'],
        [new Uint8Array([99, ...good.slice(1)]), 'BAD_FRAME'], // unknown layout
      ];
      for (const [ops, code] of cases) {
        c.sendRaw({ type: 'push', bucket, ops });
        expect((await c.next('error')).code).toBe(code);
        c.resumeAt(0);
      }
      c.send({ type: 'ping', id: 9 });
      expect((await c.next('pong')).id).toBe(9);
      c.send({ type: 'pageReq', bucket, reqId: 2, since: 0, limit: 10 });
      expect((await c.next('page')).entries).toEqual([]);
      c.close();
    });

    it('acks cumulatively and applies a re-pushed op once (dedupe by origin and originSeq)', async () => {
      const bucket = uniq('b');
      const w = await rawClient(ctx.relay);
      w.send({ type: 'sub', bucket, since: 0, flush: false, subId: 1 });
      await w.next('subscribed');
      const ops = [w.op('a', 1), w.op('b', 2), w.op('c', 3)];
      w.send({ type: 'push', bucket, ops });
      expect((await w.next('ack')).upTo).toBe(3);
      await w.next('deliver');
      // The ack was "lost": the client re-sends the same ops, then a frame overlapping them.
      w.send({ type: 'push', bucket, ops });
      const again = await w.next('ack');
      expect(again.upTo).toBe(3);
      expect(again.seq).toBe(3);
      const more = w.op('d', 4);
      w.send({ type: 'push', bucket, ops: [...ops.slice(1), more] });
      const third = await w.next('ack');
      expect(third.upTo).toBe(4);
      expect(third.seq).toBe(4);
      const d = await w.next('deliver');
      expect(d.ops.map((o) => o.key)).toEqual(['d']);
      w.send({ type: 'ping', id: 1 });
      expect((await w.next('pong')).heads[bucket]).toBe(4);
      w.close();
    });

    it('reports a gap when a frame skips an originSeq, and applies nothing past it', async () => {
      const bucket = uniq('b');
      const w = await rawClient(ctx.relay);
      const first = w.op('a', 1);
      w.op('skipped');
      const third = w.op('c', 3);
      w.send({ type: 'push', bucket, ops: [first] });
      expect((await w.next('ack')).upTo).toBe(1);
      w.send({ type: 'push', bucket, ops: [third] });
      const ack = await w.next('ack');
      expect(ack.gap).toBe(true);
      expect(ack.upTo).toBe(1);
      w.close();
    });

    it('pages by key range with keyset cursors, and "changed since" pages carry tombstones', async () => {
      const bucket = uniq('b');
      const w = await rawClient(ctx.relay);
      const keys = Array.from({ length: 25 }, (_, i) => `k${String(i).padStart(2, '0')}`);
      w.send({ type: 'push', bucket, ops: keys.map((k, i) => w.op(k, i)) });
      const mid = (await w.next('ack')).seq as number;
      w.send({ type: 'push', bucket, ops: [w.op('k03', 'new'), w.op('k20', null, 'del')] });
      await w.next('ack');
      const seen: string[] = [];
      let after: string | undefined;
      for (let reqId = 1; ; reqId++) {
        w.send({
          type: 'pageReq',
          bucket,
          reqId,
          since: 0,
          limit: 10,
          ...(after === undefined ? {} : { after }),
        });
        const page = await w.next('page', (p) => p.reqId === reqId);
        seen.push(...page.entries.map((e) => e.key));
        if (page.next === null) break;
        after = page.next;
      }
      expect(seen).toEqual(keys);
      w.send({ type: 'pageReq', bucket, reqId: 100, since: 0, after: 'k04', until: 'k07', limit: 100 });
      expect((await w.next('page', (p) => p.reqId === 100)).entries.map((e) => e.key)).toEqual([
        'k05',
        'k06',
        'k07',
      ]);
      w.send({ type: 'pageReq', bucket, reqId: 101, since: mid, limit: 100 });
      const dirty = await w.next('page', (p) => p.reqId === 101);
      expect(dirty.entries.map((e) => [e.key, e.deleted === true])).toEqual([
        ['k03', false],
        ['k20', true],
      ]);
      w.close();
    });

    it('answers a page request that asks for columns with the same entries, packed by column', async () => {
      const bucket = uniq('b');
      const w = await rawClient(ctx.relay);
      const keys = Array.from(
        { length: 30 },
        (_, i) => `k${String(i).padStart(2, '0')}-${i % 4 === 0 ? 'é日😀' : 'x'}`,
      );
      w.send({
        type: 'push',
        bucket,
        ops: keys.map((k, i) => w.op(k, i % 3 === 0 ? { i, s: 'v'.repeat(i) } : i)),
      });
      await w.next('ack');
      w.send({ type: 'push', bucket, ops: [w.op(keys[5] as string, null, 'del')] });
      await w.next('ack');
      w.send({ type: 'pageReq', bucket, reqId: 1, since: 0, limit: 100 });
      const plain = await w.next('page', (p) => p.reqId === 1);
      w.send({ type: 'pageReq', bucket, reqId: 2, since: 0, limit: 100, cols: true });
      const cols = await w.next('page', (p) => p.reqId === 2);
      expect(cols.entries).toEqual([]);
      expect(cols.cols).toBeDefined();
      const json = (es: unknown) => JSON.parse(JSON.stringify(es));
      expect(json(columnEntries(cols.cols as EntryColumns))).toEqual(json(plain.entries));
      expect(plain.entries).toHaveLength(30);
      // An empty answer stays a plain (empty) page.
      w.send({ type: 'pageReq', bucket, reqId: 3, since: 0, after: 'zz', limit: 10, cols: true });
      expect(await w.next('page', (p) => p.reqId === 3)).toMatchObject({ entries: [], next: null });
      w.close();
    });

    it('resumes from a checkpoint of the same epoch and resets a foreign epoch or a future checkpoint', async () => {
      const bucket = uniq('b');
      const w = await rawClient(ctx.relay);
      w.send({ type: 'sub', bucket, since: 0, flush: false, subId: 1 });
      const first = await w.next('subscribed');
      w.send({ type: 'push', bucket, ops: [w.op('a', 1), w.op('b', 2)] });
      await w.next('ack');
      const r = await rawClient(ctx.relay);
      r.send({ type: 'sub', bucket, since: 1, epoch: first.epoch, flush: false, subId: 2 });
      const resumed = await r.next('subscribed');
      expect(resumed.from).toBe(3);
      expect(resumed.epoch).toBe(first.epoch);
      r.send({ type: 'sub', bucket, since: 1, epoch: 'not-the-epoch', flush: false, subId: 3 });
      const reset = await r.next('reset');
      expect(reset).toMatchObject({ subId: 3, reason: 'epoch', epoch: first.epoch });
      r.send({ type: 'sub', bucket, since: 99, epoch: first.epoch, flush: false, subId: 4 });
      expect(await r.next('reset')).toMatchObject({ subId: 4, reason: 'ahead' });
      w.close();
      r.close();
    });

    it('resets a resume from before the tombstone horizon', async (t) => {
      const retain = ctx.relay.tombstoneRetainOps;
      if (retain === undefined || retain > 2000) t.skip();
      const bucket = uniq('b');
      const w = await rawClient(ctx.relay);
      w.send({ type: 'sub', bucket, since: 0, flush: false, subId: 1 });
      const { epoch } = await w.next('subscribed');
      w.send({ type: 'push', bucket, ops: [w.op('gone', 1), w.op('gone', null, 'del')] });
      await w.next('ack');
      let written = 2;
      while (written < 2 * (retain as number) + 10) {
        const n = Math.min(500, 2 * (retain as number) + 10 - written);
        w.send({
          type: 'push',
          bucket,
          ops: Array.from({ length: n }, (_, i) => w.op(`k${written + i}`, i)),
        });
        await w.next('ack');
        written += n;
      }
      const r = await rawClient(ctx.relay);
      r.send({ type: 'sub', bucket, since: 1, epoch, flush: false, subId: 9 });
      expect(await r.next('reset')).toMatchObject({ subId: 9, reason: 'horizon' });
      r.send({ type: 'pageReq', bucket, reqId: 1, since: 1, limit: 10 });
      expect(await r.next('reset')).toMatchObject({ subId: -1, reason: 'horizon' });
      w.close();
      r.close();
    });

    it('state flush: waits for each connected writer to push and report its counter', async () => {
      const bucket = uniq('b');
      const w = await rawClient(ctx.relay);
      w.send({ type: 'sub', bucket, since: 0, flush: false, subId: 1 });
      await w.next('subscribed');
      const reader = await rawClient(ctx.relay, uniq('ro'), { write: [] });
      reader.send({ type: 'sub', bucket, since: 0, flush: false, subId: 1 });
      await reader.next('subscribed');
      const j = await rawClient(ctx.relay);
      j.send({ type: 'sub', bucket, since: 0, flush: true, subId: 1 });
      const subd = await j.next('subscribed');
      expect(subd.flushId).toBeDefined();
      const marker = await w.next('marker');
      expect(marker.flushId).toBe(subd.flushId);
      // The writer flushes what it had in flight, then reports its transmission counter.
      const op = w.op('inflight', 'x');
      w.send({ type: 'push', bucket, ops: [op] });
      w.send({ type: 'markerReply', bucket, flushId: marker.flushId, sent: op.originSeq });
      const flushed = await j.next('flushed');
      const ack = await w.next('ack');
      expect(flushed.covered).toEqual([w.replicaId]);
      expect(flushed.missed).toEqual([]);
      expect(flushed.seq).toBeGreaterThanOrEqual(ack.seq as number);
      const d = await j.next('deliver');
      expect(d.ops.map((o) => o.key)).toEqual(['inflight']);
      // Read-only subscribers are never asked.
      await sleep(50);
      expect(reader.received.some((m) => m.type === 'marker')).toBe(false);
      for (const c of [w, reader, j]) c.close();
    });

    it('state flush: reports a writer that disconnects before answering as missed', async () => {
      const bucket = uniq('b');
      const w = await rawClient(ctx.relay);
      w.send({ type: 'sub', bucket, since: 0, flush: false, subId: 1 });
      await w.next('subscribed');
      const j = await rawClient(ctx.relay);
      j.send({ type: 'sub', bucket, since: 0, flush: true, subId: 1 });
      await w.next('marker');
      w.terminate();
      const flushed = await j.next('flushed');
      expect(flushed.covered).toEqual([]);
      expect(flushed.missed).toEqual([{ replicaId: w.replicaId, reason: 'disconnected' }]);
      j.close();
    });

    it('stops the stream on unsub and answers ping with the heads of subscribed buckets', async () => {
      const bucket = uniq('b');
      const other = uniq('b');
      const w = await rawClient(ctx.relay);
      const s = await rawClient(ctx.relay);
      s.send({ type: 'sub', bucket, since: 0, flush: false, subId: 1 });
      s.send({ type: 'sub', bucket: other, since: 0, flush: false, subId: 2 });
      await s.next('subscribed', (m) => m.bucket === other);
      w.send({ type: 'push', bucket, ops: [w.op('a', 1)] });
      await w.next('ack');
      await s.next('deliver');
      s.send({ type: 'ping', id: 5 });
      expect((await s.next('pong')).heads).toEqual({ [bucket]: 1, [other]: 0 });
      s.send({ type: 'unsub', bucket });
      s.send({ type: 'ping', id: 6 });
      expect((await s.next('pong')).heads).toEqual({ [other]: 0 });
      w.send({ type: 'push', bucket, ops: [w.op('b', 2)] });
      await w.next('ack');
      await sleep(50);
      expect(s.drain('deliver')).toEqual([]);
      w.close();
      s.close();
    });

    it('speaks JSON text frames to a client that says hello in JSON', async () => {
      const sub = uniq('j');
      const token = await ctx.relay.makeToken({ sub, read: ['*'], write: ['*'] });
      const c = await RawClient.connect(ctx.relay, { token, replicaId: sub });
      c.send(JSON.stringify({ type: 'hello', v: PROTOCOL_VERSION, replicaId: sub }));
      await c.next('welcome');
      c.send(JSON.stringify({ type: 'ping', id: 3 }));
      expect((await c.next('pong')).id).toBe(3);
      c.close();
    });
  });

  describe('malformed frames', () => {
    it('closes with 4000 when the first frame is garbage, not a hello, or another version', async () => {
      const sub = uniq('m');
      const token = await ctx.relay.makeToken({ sub, read: ['*'], write: ['*'] });
      const cases: [string | Uint8Array | Record<string, unknown>, string][] = [
        [new Uint8Array([0xc1, 0xff, 0x00]), 'BAD_FRAME'],
        [{ type: 'ping', id: 1 }, 'BAD_MESSAGE'],
        [{ type: 'hello', v: PROTOCOL_VERSION + 1, replicaId: sub }, 'PROTOCOL_VERSION'],
        ['{not json', 'BAD_FRAME'],
      ];
      for (const [frame, code] of cases) {
        const c = await RawClient.connect(ctx.relay, { token, replicaId: sub });
        c.send(frame);
        const closed = await c.closed;
        expect(closed.code).toBe(4000);
        expect(c.received.find((m) => m.type === 'error')).toMatchObject({ code });
      }
    });

    it('answers malformed frames after hello with typed errors and keeps serving the socket', async () => {
      const c = await rawClient(ctx.relay);
      const bucket = uniq('b');
      const good = c.op('k', 1);
      const frames: [Uint8Array | Record<string, unknown>, string][] = [
        [new Uint8Array([0x92, 0x01]), 'BAD_FRAME'],
        [encodeFrame([1, 2, 3]), 'BAD_MESSAGE'],
        [{ type: 'launch' }, 'BAD_MESSAGE'],
        [{ type: 'push', bucket, ops: [] }, 'BAD_MESSAGE'],
        [{ type: 'push', bucket, ops: [{ ...good, kind: 'upsert' }] }, 'BAD_MESSAGE'],
        [{ type: 'push', bucket, ops: [{ ...good, hlc: 'yesterday' }] }, 'BAD_HLC'],
        [{ type: 'push', bucket, ops: [{ ...good, value: undefined }] }, 'BAD_MESSAGE'],
        [{ type: 'push', bucket: 'no spaces allowed', ops: [good] }, 'BAD_MESSAGE'],
        [{ type: 'sub', bucket, since: -1, flush: false, subId: 1 }, 'BAD_MESSAGE'],
        [{ type: 'pageReq', bucket, reqId: 1, since: 0, limit: 0 }, 'BAD_MESSAGE'],
        [{ type: 'hello', v: PROTOCOL_VERSION, replicaId: c.replicaId }, 'BAD_MESSAGE'],
        [{ type: 'markerReply', bucket, flushId: 'x', sent: 1 }, 'NOT_SUBSCRIBED'],
        [
          {
            type: 'push',
            bucket,
            ops: [{ ...good, origin: 'someone-else', hlc: `${good.hlc.slice(0, 16)}someone-else` }],
          },
          'ORIGIN_MISMATCH',
        ],
      ];
      for (const [frame, code] of frames) {
        if (frame instanceof Uint8Array) c.send(frame);
        else c.sendRaw(frame);
        const err = await c.next('error');
        expect(err.code, JSON.stringify(frame)).toBe(code);
      }
      c.send({ type: 'ping', id: 42 });
      expect((await c.next('pong')).id).toBe(42);
      // Nothing of the malformed pushes was applied.
      c.send({ type: 'pageReq', bucket, reqId: 2, since: 0, limit: 10 });
      expect((await c.next('page')).entries).toEqual([]);
      c.close();
    });

    it('refuses a push whose strings are not UTF-8 with BAD_MESSAGE and stores nothing of it', async () => {
      const c = await rawClient(ctx.relay);
      const bucket = uniq('utf8');
      // Each would decode leniently to another key (U+FFFD, or `Á` for C3 41): keys must not merge.
      const invalid = [
        [0x61, 0xff],
        [0xed, 0xa0],
        [0xc3, 0x41],
      ];
      for (const bad of invalid) {
        const frame = withBytes(encodeFrame({ type: 'push', bucket, ops: [c.op('kZQ', 1)] }), bad);
        c.send(frame);
        expect((await c.next('error')).code).toBe('BAD_MESSAGE');
        c.resumeAt(0);
      }
      // The same in a value's string and over HTTP.
      const inValue = withBytes(
        encodeFrame({ type: 'push', bucket, ops: [c.op('k', { s: 'ZQ' })] }),
        [0xc0, 0xaf],
      );
      c.send(inValue);
      expect((await c.next('error')).code).toBe('BAD_MESSAGE');
      c.resumeAt(0);
      const token = await ctx.relay.makeToken({ sub: c.replicaId, read: ['*'], write: ['*'] });
      const res = await fetch(`${ctx.relay.httpUrl}/v1/buckets/${bucket}/ops`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/x-msgpack',
          accept: 'application/json',
        },
        body: withBytes(encodeFrame({ type: 'push', bucket, ops: [c.op('kZQ', 1)] }), [0x61, 0xff]).slice()
          .buffer,
      });
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ code: 'BAD_MESSAGE' });
      c.resumeAt(0);
      // A real U+FFFD is a key like any other; it is the only entry.
      c.send({ type: 'push', bucket, ops: [c.op('k\uFFFD', 2)] });
      expect((await c.next('ack')).upTo).toBe(1);
      c.send({ type: 'pageReq', bucket, reqId: 1, since: 0, limit: 10 });
      expect((await c.next('page')).entries.map((e) => e.key)).toEqual(['k\uFFFD']);
      c.close();
    });
  });
}

/** `frame` with the first `ZQ` (two ASCII bytes of a string) replaced by `bytes`. */
function withBytes(frame: Uint8Array, bytes: readonly number[]): Uint8Array {
  const out = new Uint8Array(frame);
  const at = out.findIndex((b, i) => b === 0x5a && out[i + 1] === 0x51);
  if (at < 0) throw new Error('no ZQ in the frame');
  out.set(bytes, at);
  return out;
}
