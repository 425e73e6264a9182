import { request } from 'node:http';
import { PROTOCOL_VERSION } from '@mittsync/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuthenticator, signToken } from './auth';
import { type NodeRelay, startNodeRelay } from './node/server';
import { nodeSocketTarget, RawClient } from './testing';

const secret = 'dev-token-test-production-secret-0123456789';
const devServer = 'http://localhost:5173';
let relay: NodeRelay;

beforeAll(async () => {
  relay = await startNodeRelay({
    port: 0,
    data: ':memory:',
    dev: true,
    auth: { secret },
    corsOrigins: '*',
    devOrigins: [devServer],
  });
});
afterAll(() => relay.close());

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: { token?: string; sub?: string; code?: string; message?: string };
}

/** `GET path` with exactly these headers (fetch would not let a test set Host). */
function get(path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: relay.port,
        path,
        method,
        headers: { host: `127.0.0.1:${relay.port}`, ...headers },
      },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => {
          text += d.toString();
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: text === '' ? {} : JSON.parse(text),
          }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('dev token route', () => {
  it("hands a fresh replica id and a working token to the relay's own pages", async () => {
    const a = await get('/v1/dev/token', { 'sec-fetch-site': 'same-origin' });
    expect(a.status).toBe(200);
    const b = await get('/v1/dev/token', {
      host: `localhost:${relay.port}`,
      origin: `http://localhost:${relay.port}`,
    });
    expect(b.status).toBe(200);
    expect(a.body.sub).toMatch(/^d[A-Za-z0-9_-]{15}$/);
    expect(b.body.sub).not.toBe(a.body.sub);
    const c = await RawClient.connect(nodeSocketTarget(relay.url), { token: a.body.token as string });
    c.send({ type: 'hello', v: PROTOCOL_VERSION, replicaId: a.body.sub as string });
    await c.next('welcome');
    c.close();
  });

  it('scopes a dev token to key prefixes when asked, and refuses a malformed request', async () => {
    const q = encodeURIComponent(JSON.stringify({ orders: ['user-42/'] }));
    const a = await get(`/v1/dev/token?prefixes=${q}`, { 'sec-fetch-site': 'same-origin' });
    expect(a.status).toBe(200);
    const dev = JSON.parse(
      Buffer.from((a.body.token as string).split('.')[1] as string, 'base64url').toString(),
    ) as { mittsync: { prefixes?: unknown } };
    expect(dev.mittsync.prefixes).toEqual({ orders: ['user-42/'] });
    for (const bad of [
      'nope',
      JSON.stringify({ orders: 'user-42/' }),
      JSON.stringify({ 'bad pattern!': ['x'] }),
    ]) {
      const r = await get(`/v1/dev/token?prefixes=${encodeURIComponent(bad)}`, {
        'sec-fetch-site': 'same-origin',
      });
      expect(r.status).toBe(400);
      expect(r.body.code).toBe('BAD_MESSAGE');
    }
  });

  it('refuses pages of other origins, with no CORS headers whatever --cors says', async () => {
    const evil = await get('/v1/dev/token', {
      origin: 'https://evil.example',
      'sec-fetch-site': 'cross-site',
    });
    expect(evil.status).toBe(403);
    expect(evil.body.code).toBe('FORBIDDEN');
    expect(evil.headers['access-control-allow-origin']).toBeUndefined();
    const pre = await get(
      '/v1/dev/token',
      { origin: 'https://evil.example', 'access-control-request-method': 'GET' },
      'OPTIONS',
    );
    expect(pre.headers['access-control-allow-origin']).toBeUndefined();
    // Same host, other port: another local dev server is another origin.
    const other = await get('/v1/dev/token', { origin: 'http://127.0.0.1:1' });
    expect(other.status).toBe(403);
    // No Origin, but the browser says the fetch is cross-site (a no-cors request, an image...).
    expect((await get('/v1/dev/token', { 'sec-fetch-site': 'cross-site' })).status).toBe(403);
    // The API keeps its CORS.
    const pages = await get('/v1/buckets/b/pages', {
      origin: 'https://evil.example',
      accept: 'application/json',
    });
    expect(pages.headers['access-control-allow-origin']).toBe('*');
  });

  it('refuses a Host that is not its loopback name (DNS rebinding)', async () => {
    for (const host of [
      `evil.example:${relay.port}`,
      `127.0.0.1:${relay.port + 1}`,
      'localhost',
      `127.0.0.2:${relay.port}`,
    ]) {
      const r = await get('/v1/dev/token', { host });
      expect(r.status, host).toBe(403);
      expect(r.body.token, host).toBeUndefined();
    }
    expect((await get('/v1/dev/token', { host: `[::1]:${relay.port}` })).status).toBe(200);
  });

  it('answers a configured dev server, with CORS for it alone', async () => {
    const viaProxy = await get('/v1/dev/token', { host: 'localhost:5173' });
    expect(viaProxy.status).toBe(200);
    const cross = await get('/v1/dev/token', { origin: devServer });
    expect(cross.status).toBe(200);
    expect(cross.headers['access-control-allow-origin']).toBe(devServer);
    const pre = await get(
      '/v1/dev/token',
      {
        origin: devServer,
        'access-control-request-method': 'GET',
        'access-control-request-headers': 'authorization',
      },
      'OPTIONS',
    );
    expect(pre.headers['access-control-allow-origin']).toBe(devServer);
  });

  it("never hands out a token for another caller's replica id", async () => {
    const first = await get('/v1/dev/token?sub=rOwnId');
    expect(first.status).toBe(200);
    expect(first.body.sub).toBe('rOwnId');
    // Someone else naming it: refused.
    const thief = await get('/v1/dev/token?sub=rOwnId');
    expect(thief.status).toBe(403);
    expect(thief.body.token).toBeUndefined();
    // An id the relay issued without sub: refused too.
    const issued = await get('/v1/dev/token');
    expect((await get(`/v1/dev/token?sub=${issued.body.sub}`)).status).toBe(403);
    // A token for another id, or one signed with another key, proves nothing.
    const forged = await signToken(secret, { sub: 'rOwnId', read: ['*'], write: ['*'] });
    for (const proof of [issued.body.token as string, forged]) {
      expect((await get('/v1/dev/token?sub=rOwnId', { authorization: `Bearer ${proof}` })).status).toBe(403);
    }
    // Its holder renews it with the token it got.
    const renewed = await get('/v1/dev/token?sub=rOwnId', { authorization: `Bearer ${first.body.token}` });
    expect(renewed.status).toBe(200);
    expect(renewed.body.sub).toBe('rOwnId');
  });

  it('signs with its own secret: dev tokens do not verify with the production secret', async () => {
    const { token } = (await get('/v1/dev/token')).body;
    expect(relay.devSecret).toBeDefined();
    expect(relay.devSecret).not.toBe(secret);
    await expect(createAuthenticator({ secret }).verify(token as string)).rejects.toMatchObject({
      code: 'UNAUTHENTICATED',
    });
    // The relay still verifies tokens of the production secret.
    const real = await signToken(secret, { sub: 'real', read: ['*'] });
    const c = await RawClient.connect(nodeSocketTarget(relay.url), { token: real });
    c.send({ type: 'hello', v: PROTOCOL_VERSION, replicaId: 'real' });
    await c.next('welcome');
    c.close();
  });
});
