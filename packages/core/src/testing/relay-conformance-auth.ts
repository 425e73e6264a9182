import { describe, expect, it } from 'vitest';
import { encodeHlc } from '../hlc';
import { CLOSE_CODES, PROTOCOL_VERSION } from '../protocol';
import { RawClient, UpgradeRefused } from './raw-client';
import { httpGet, type RelayUnderTest, rawClient, uniq } from './relay-harness';

async function refusal(p: Promise<unknown>): Promise<UpgradeRefused> {
  try {
    await p;
  } catch (e) {
    if (e instanceof UpgradeRefused) return e;
    throw e;
  }
  throw new Error('the upgrade was accepted');
}

/** base64url of `x` as JSON (ASCII only: the JWT headers built here). */
function b64url(x: unknown): string {
  return btoa(JSON.stringify(x)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** The auth matrix and the limits every relay enforces. */
export function authTests(ctx: { relay: RelayUnderTest }): void {
  describe('auth', () => {
    it('refuses the upgrade with 401 for a bad signature, an expired token or alg "none"', async () => {
      const sub = uniq('a');
      const good = await ctx.relay.makeToken({ sub, read: ['*'], write: ['*'] });
      const [h, p, s] = good.split('.') as [string, string, string];
      const tampered = `${h}.${p}.${s.slice(0, -4)}${s.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`;
      const forged = `${b64url({ alg: 'none', typ: 'JWT' })}.${p}.`;
      const expired = await ctx.relay.makeToken({ sub, read: ['*'], write: ['*'], ttlS: -60 });
      for (const token of [tampered, forged, 'not-a-jwt']) {
        const r = await refusal(RawClient.connect(ctx.relay, { token }));
        expect(r.status).toBe(401);
        expect(r.code).toBe('UNAUTHENTICATED');
      }
      const r = await refusal(RawClient.connect(ctx.relay, { token: expired }));
      expect(r.status).toBe(401);
      expect(r.code).toBe('TOKEN_EXPIRED');
    });

    it('closes with 4001 UNAUTHENTICATED without any token', async () => {
      const anon = await RawClient.connect(ctx.relay);
      anon.send({ type: 'hello', v: PROTOCOL_VERSION, replicaId: 'anon' });
      expect((await anon.closed).code).toBe(CLOSE_CODES.UNAUTHENTICATED);
      expect(anon.received.find((m) => m.type === 'error')).toMatchObject({ code: 'UNAUTHENTICATED' });
    });

    it('closes with 4003 FORBIDDEN when a valid token is used for another replicaId', async () => {
      const token = await ctx.relay.makeToken({ sub: uniq('alice'), read: ['*'], write: ['*'] });
      for (const tokenIn of ['header', 'hello'] as const) {
        const mallory = await RawClient.connect(ctx.relay, tokenIn === 'header' ? { token } : {});
        mallory.send({
          type: 'hello',
          v: PROTOCOL_VERSION,
          replicaId: 'mallory',
          ...(tokenIn === 'hello' ? { token } : {}),
        });
        expect((await mallory.closed).code).toBe(CLOSE_CODES.FORBIDDEN);
        expect(mallory.received.find((m) => m.type === 'error')).toMatchObject({ code: 'FORBIDDEN' });
        expect(mallory.received.find((m) => m.type === 'welcome')).toBeUndefined();
      }
    });

    it('accepts the token in the query string or in hello.token; an expired hello token closes 4002', async () => {
      const sub = uniq('q');
      const token = await ctx.relay.makeToken({ sub, read: ['*'], write: ['*'] });
      const q = await RawClient.connect(ctx.relay, { token, tokenIn: 'query' });
      q.send({ type: 'hello', v: PROTOCOL_VERSION, replicaId: sub });
      await q.next('welcome');
      q.close();
      const h = await RawClient.connect(ctx.relay);
      h.send({ type: 'hello', v: PROTOCOL_VERSION, replicaId: sub, token });
      h.send({ type: 'ping', id: 1 }); // sent before the token is verified: handled after
      await h.next('welcome');
      expect((await h.next('pong')).id).toBe(1);
      h.close();
      const expired = await ctx.relay.makeToken({ sub, read: ['*'], write: ['*'], ttlS: -60 });
      const e = await RawClient.connect(ctx.relay);
      e.send({ type: 'hello', v: PROTOCOL_VERSION, replicaId: sub, token: expired });
      expect((await e.closed).code).toBe(CLOSE_CODES.TOKEN_EXPIRED);
    });

    it('authorizes every frame per bucket: read scopes for sub and pages, write scopes for pushes', async () => {
      const todo = `todo:${uniq('x')}`;
      const other = uniq('other');
      const c = await rawClient(ctx.relay, uniq('s'), { read: ['todo:*'], write: [todo] });
      c.send({ type: 'sub', bucket: todo, since: 0, flush: false, subId: 1 });
      await c.next('subscribed');
      c.send({ type: 'sub', bucket: other, since: 0, flush: false, subId: 2 });
      expect(await c.nextError('FORBIDDEN')).toMatchObject({ bucket: other });
      c.send({ type: 'pageReq', bucket: other, reqId: 77, since: 0, limit: 10 });
      expect(await c.nextError('FORBIDDEN')).toMatchObject({ bucket: other, reqId: 77 });
      // A write scope for one bucket never leaks to another bucket multiplexed on the socket.
      c.send({ type: 'push', bucket: todo, ops: [c.op('a', 1)] });
      expect((await c.next('ack')).upTo).toBe(1);
      c.send({ type: 'push', bucket: `todo:${uniq('y')}`, ops: [c.op('a', 2)] });
      expect((await c.nextError('FORBIDDEN')).bucket).toMatch(/^todo:/);
      c.send({ type: 'push', bucket: todo, ops: [c.op('b', 3)] });
      const ack = await c.next('ack');
      expect(ack.gap).toBe(true); // originSeq 2 went to the refused frame and was never applied
      c.close();
    });

    it('denies everything to a token without scopes, and read-only tokens cannot push', async () => {
      const bucket = uniq('b');
      const none = await rawClient(ctx.relay, uniq('n'), { read: [], write: [] });
      none.send({ type: 'sub', bucket, since: 0, flush: false, subId: 1 });
      await none.nextError('FORBIDDEN');
      none.close();
      const ro = await rawClient(ctx.relay, uniq('ro'), { write: [] });
      ro.send({ type: 'sub', bucket, since: 0, flush: false, subId: 1 });
      await ro.next('subscribed');
      ro.send({ type: 'push', bucket, ops: [ro.op('k', 1)] });
      await ro.nextError('FORBIDDEN');
      ro.send({ type: 'pageReq', bucket, reqId: 1, since: 0, limit: 10 });
      expect((await ro.next('page')).entries).toEqual([]);
      ro.close();
    });

    it('closes a socket with 4002 when its token expires while connected', async () => {
      const sub = uniq('e');
      const token = await ctx.relay.makeToken({ sub, read: ['*'], write: ['*'], ttlS: 2 });
      const { client } = await RawClient.open(ctx.relay, token, sub);
      const closed = await client.closed;
      expect(closed.code).toBe(CLOSE_CODES.TOKEN_EXPIRED);
      expect(client.received.find((m) => m.type === 'error')).toMatchObject({ code: 'TOKEN_EXPIRED' });
    });

    it('checks tokens and scopes on the HTTP API: 401 without or with a bad token, 403 out of scope', async () => {
      const bucket = uniq('b');
      const path = `/v1/buckets/${bucket}/pages`;
      expect((await httpGet(ctx.relay, path)).status).toBe(401);
      expect((await httpGet(ctx.relay, path, 'x.y.z')).status).toBe(401);
      const reader = await ctx.relay.makeToken({ sub: uniq('h'), read: ['nothing-*'] });
      const denied = await httpGet(ctx.relay, path, reader);
      expect(denied.status).toBe(403);
      expect(denied.body).toMatchObject({ type: 'error', code: 'FORBIDDEN' });
      const res = await fetch(`${ctx.relay.httpUrl}/v1/buckets/${bucket}/ops`, {
        method: 'POST',
        headers: { authorization: `Bearer ${reader}`, 'content-type': 'application/json' },
        body: JSON.stringify({ ops: [] }),
      });
      expect(res.status).toBe(403);
    });
  });

  describe('limits', () => {
    it('refuses frames past the announced limits with typed errors, and the socket keeps working', async () => {
      const sub = uniq('l');
      const token = await ctx.relay.makeToken({ sub, read: ['*'], write: ['*'] });
      const { client: c, welcome } = await RawClient.open(ctx.relay, token, sub);
      const L = welcome.limits;
      const bucket = uniq('b');
      const many = Array.from({ length: L.maxOpsPerFrame + 1 }, (_, i) => ({
        ...c.op(`k${i}`, i),
        originSeq: i + 1,
      }));
      c.send({ type: 'push', bucket, ops: many });
      expect(await c.nextError('TOO_MANY_OPS')).toMatchObject({ bucket });
      c.resumeAt(0);
      c.send({ type: 'push', bucket, ops: [c.op('x'.repeat(L.maxKeyBytes + 1), 1)] });
      await c.nextError('KEY_TOO_LARGE');
      c.resumeAt(0);
      c.send({ type: 'push', bucket, ops: [c.op('big', 'v'.repeat(L.maxValueBytes + 1))] });
      await c.nextError('VALUE_TOO_LARGE');
      // A clock far ahead: the op is consumed (its originSeq acked) but rejected, not applied.
      c.resumeAt(0);
      const ahead = { ...c.op('future', 1), hlc: encodeHlc(Date.now() + L.maxDriftMs + 3_600_000, 0, sub) };
      c.send({ type: 'push', bucket, ops: [ahead] });
      const ack = await c.next('ack');
      expect(ack.upTo).toBe(1);
      expect(ack.rejected).toEqual([expect.objectContaining({ originSeq: 1, code: 'CLOCK_DRIFT' })]);
      c.send({ type: 'pageReq', bucket, reqId: 1, since: 0, limit: 10 });
      expect((await c.next('page')).entries).toEqual([]);
      c.close();
    });

    it('caps the buckets one socket may use', async () => {
      const sub = uniq('l');
      const token = await ctx.relay.makeToken({ sub, read: ['*'], write: ['*'] });
      const { client: c, welcome } = await RawClient.open(ctx.relay, token, sub);
      const n = welcome.limits.maxBucketsPerSocket;
      const names = Array.from({ length: n + 1 }, () => uniq('many'));
      names.forEach((bucket, i) => {
        c.send({ type: 'sub', bucket, since: 0, flush: false, subId: i });
      });
      const refused = await c.nextError('TOO_MANY_BUCKETS');
      expect(refused.bucket).toBe(names[n]);
      c.send({ type: 'unsub', bucket: names[0] as string });
      c.send({ type: 'sub', bucket: names[n] as string, since: 0, flush: false, subId: 999 });
      expect((await c.next('subscribed', (m) => m.subId === 999)).bucket).toBe(names[n]);
      c.close();
    });

    it('closes a socket that sends a frame over the size limit (4009, or 1009 from the socket layer)', async () => {
      const sub = uniq('l');
      const token = await ctx.relay.makeToken({ sub, read: ['*'], write: ['*'] });
      const { client: c, welcome } = await RawClient.open(ctx.relay, token, sub);
      c.send(new Uint8Array(welcome.limits.maxFrameBytes + 1));
      const closed = await c.closed;
      expect([CLOSE_CODES.FRAME_TOO_LARGE, 1009]).toContain(closed.code);
      const res = await fetch(`${ctx.relay.httpUrl}/v1/buckets/${uniq('b')}/ops`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-msgpack' },
        body: new Uint8Array(welcome.limits.maxFrameBytes + 1),
      });
      expect(res.status).toBe(413);
    });
  });
}
