import { describe, expect, it } from 'vitest';
import { encodeHlc } from '../hlc';
import { BEARER_SUBPROTOCOL_PREFIX, CLOSE_CODES, PROTOCOL_VERSION, SUBPROTOCOL } from '../protocol';
import { RawClient, UpgradeRefused } from './raw-client';
import { httpGet, type RelayUnderTest, rawClient, sleep, uniq } from './relay-harness';

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
      for (const tokenIn of ['subprotocol', 'header'] as const) {
        for (const token of [tampered, forged, 'not-a-jwt']) {
          const r = await refusal(RawClient.connect(ctx.relay, { token, tokenIn }));
          expect(r.status).toBe(401);
          expect(r.code).toBe('UNAUTHENTICATED');
        }
        const r = await refusal(RawClient.connect(ctx.relay, { token: expired, tokenIn }));
        expect(r.status).toBe(401);
        expect(r.code).toBe('TOKEN_EXPIRED');
      }
    });

    it('refuses an upgrade without any token with 401: no socket exists until a token verifies', async () => {
      const r = await refusal(RawClient.connect(ctx.relay));
      expect(r.status).toBe(401);
      expect(r.code).toBe('UNAUTHENTICATED');
      // Naming the protocol alone is no credential either.
      const bare = await refusal(RawClient.connect(ctx.relay, { protocols: [SUBPROTOCOL] }));
      expect(bare.status).toBe(401);
      expect(bare.code).toBe('UNAUTHENTICATED');
    });

    it('takes the token from the mittsync.bearer subprotocol and selects mittsync.v1, never the token', async () => {
      const sub = uniq('sp');
      const token = await ctx.relay.makeToken({ sub, read: ['*'], write: ['*'] });
      const c = await RawClient.connect(ctx.relay, { token, tokenIn: 'subprotocol' });
      expect(c.protocol).toBe(SUBPROTOCOL);
      c.send({ type: 'hello', v: PROTOCOL_VERSION, replicaId: sub });
      await c.next('welcome');
      c.close();
      // The Authorization header (Node clients) gets the same protocol when it is offered.
      const hd = await RawClient.connect(ctx.relay, { token, tokenIn: 'header' });
      expect(hd.protocol).toBe(SUBPROTOCOL);
      hd.close();
      // A bearer offered without mittsync.v1 could only be answered with the token: refused.
      const alone = await refusal(
        RawClient.connect(ctx.relay, { protocols: [`${BEARER_SUBPROTOCOL_PREFIX}${token}`] }),
      );
      expect(alone.status).toBe(400);
      // Two tokens are ambiguous: refused, whichever is valid.
      const two = await refusal(
        RawClient.connect(ctx.relay, {
          protocols: [
            SUBPROTOCOL,
            `${BEARER_SUBPROTOCOL_PREFIX}${token}`,
            `${BEARER_SUBPROTOCOL_PREFIX}x.y.z`,
          ],
        }),
      );
      expect(two.status).toBe(401);
    });

    it('refuses a token in the URL with 401 TOKEN_IN_URL, valid or not', async () => {
      const sub = uniq('q');
      const token = await ctx.relay.makeToken({ sub, read: ['*'], write: ['*'] });
      const r = await refusal(RawClient.connect(ctx.relay, { token, tokenIn: 'query' }));
      expect(r.status).toBe(401);
      expect(r.code).toBe('TOKEN_IN_URL');
      const page = await httpGet(ctx.relay, `/v1/buckets/${uniq('b')}/pages?token=${token}`);
      expect(page.status).toBe(401);
      expect(page.body).toMatchObject({ type: 'error', code: 'TOKEN_IN_URL' });
    });

    it('closes with 4003 FORBIDDEN when a valid token is used for another replicaId', async () => {
      const token = await ctx.relay.makeToken({ sub: uniq('alice'), read: ['*'], write: ['*'] });
      for (const tokenIn of ['header', 'subprotocol'] as const) {
        const mallory = await RawClient.connect(ctx.relay, { token, tokenIn });
        mallory.send({ type: 'hello', v: PROTOCOL_VERSION, replicaId: 'mallory' });
        expect((await mallory.closed).code).toBe(CLOSE_CODES.FORBIDDEN);
        expect(mallory.received.find((m) => m.type === 'error')).toMatchObject({ code: 'FORBIDDEN' });
        expect(mallory.received.find((m) => m.type === 'welcome')).toBeUndefined();
      }
    });

    it('takes a fresh token in an auth frame: the socket outlives its first token', async () => {
      const sub = uniq('re');
      const short = await ctx.relay.makeToken({ sub, read: ['*'], write: ['*'], ttlS: 2 });
      const { client: c } = await RawClient.open(ctx.relay, short, sub);
      // Refused fresh tokens leave the socket on its current one.
      const other = await ctx.relay.makeToken({ sub: uniq('other'), read: ['*'], write: ['*'] });
      c.send({ type: 'auth', token: other });
      expect((await c.nextError('FORBIDDEN')).message).toMatch(/subject/);
      c.send({ type: 'auth', token: 'not-a-jwt' });
      await c.nextError('UNAUTHENTICATED');
      const fresh = await ctx.relay.makeToken({ sub, read: ['*'], write: ['*'], ttlS: 3600 });
      c.send({ type: 'auth', token: fresh });
      const authed = await c.next('authed');
      expect(authed.expiresAt).toBeGreaterThan(Date.now() + 3_000_000);
      await sleep(2_500); // past the first token's expiry
      c.send({ type: 'ping', id: 7 });
      expect((await c.next('pong')).id).toBe(7);
      expect(c.received.find((m) => m.type === 'error' && m.code === 'TOKEN_EXPIRED')).toBeUndefined();
      c.close();
    });

    it('applies the scopes of a fresh token: subscriptions it cannot read are dropped', async () => {
      const sub = uniq('sc');
      const keep = `keep:${uniq('k')}`;
      const lose = `lose:${uniq('l')}`;
      const token = await ctx.relay.makeToken({ sub, read: ['*'], write: ['*'] });
      const { client: c } = await RawClient.open(ctx.relay, token, sub);
      c.send({ type: 'sub', bucket: keep, since: 0, flush: false, subId: 1 });
      c.send({ type: 'sub', bucket: lose, since: 0, flush: false, subId: 2 });
      await c.next('subscribed', (m) => m.bucket === keep);
      await c.next('subscribed', (m) => m.bucket === lose);
      const narrow = await ctx.relay.makeToken({ sub, read: ['keep:*'], write: ['keep:*'] });
      c.send({ type: 'auth', token: narrow });
      expect(await c.nextError('FORBIDDEN')).toMatchObject({ bucket: lose });
      await c.next('authed');
      c.send({ type: 'push', bucket: lose, ops: [c.op('a', 1)] });
      expect(await c.nextError('FORBIDDEN')).toMatchObject({ bucket: lose });
      // Another writer's op on the dropped bucket no longer reaches this socket.
      const w = await rawClient(ctx.relay);
      w.send({ type: 'push', bucket: lose, ops: [w.op('x', 1)] });
      await w.next('ack');
      w.resumeAt(0); // originSeq counts per bucket
      w.send({ type: 'push', bucket: keep, ops: [w.op('y', 1)] });
      await w.next('ack');
      const got = await c.next('deliver');
      expect(got.bucket).toBe(keep);
      expect(c.received.filter((m) => m.type === 'deliver' && m.bucket === lose)).toEqual([]);
      w.close();
      c.close();
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

    it('caps the buckets one socket may use', async (t) => {
      const sub = uniq('l');
      const token = await ctx.relay.makeToken({ sub, read: ['*'], write: ['*'] });
      const { client: c, welcome } = await RawClient.open(ctx.relay, token, sub);
      if (welcome.socketPerBucket === true) {
        // Each socket serves one bucket there (edge-socket.test.ts checks that it refuses others).
        c.close();
        t.skip();
      }
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
