import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MittsyncError } from '@mittsync/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { devToken } from './dev-token';

/** A stand-in for the relay's dev token route: the replicaId picks the answer. */
let server: Server;
let url: string;
/** The Authorization header of each `sub=renew` request. */
const renewals: (string | undefined)[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    const sub = new URL(req.url ?? '/', 'http://x').searchParams.get('sub');
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (sub === 'ok') json(200, { token: 't-ok', sub, dev: true });
    else if (sub === 'renew') {
      renewals.push(req.headers.authorization);
      json(200, { token: `t-renew-${renewals.length}`, sub, dev: true });
    } else if (sub === 'plain') json(404, { type: 'error', code: 'BAD_MESSAGE', message: 'no route' });
    else if (sub === 'busy') json(429, { type: 'error', code: 'RATE_LIMITED', message: 'too many requests' });
    else if (sub === 'odd') json(200, { nothing: true });
    else json(500, 'oops');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** What `devToken` rejects with for `replicaId` (fails the test if it resolves). */
async function failure(replicaId: string, relay = url): Promise<MittsyncError> {
  const e = await devToken(relay)({ replicaId }).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(MittsyncError);
  return e as MittsyncError;
}

describe('devToken', () => {
  it('returns the token a dev relay hands out, asking over HTTP for a ws:// relay URL', async () => {
    expect(await devToken(url)({ replicaId: 'ok' })).toBe('t-ok');
  });

  it('renews a replica with the token it got for it before', async () => {
    const get = devToken(url);
    expect(await get({ replicaId: 'renew' })).toBe('t-renew-1');
    expect(await get({ replicaId: 'renew' })).toBe('t-renew-2');
    expect(renewals).toEqual([undefined, 'Bearer t-renew-1']);
  });

  it('says the relay must run with --dev when the route does not exist', async () => {
    const e = await failure('plain');
    expect(e.code).toBe('UNAUTHENTICATED');
    expect(e.message).toContain('--dev');
    expect(e.detail).toEqual({ status: 404 });
  });

  it("keeps the relay's own code when it refuses the request", async () => {
    const e = await failure('busy');
    expect(e.code).toBe('RATE_LIMITED');
    expect(e.message).toContain('too many requests');
  });

  it('fails with UNAUTHENTICATED for an answer without an error code', async () => {
    expect((await failure('broken')).code).toBe('UNAUTHENTICATED');
  });

  it('fails with BAD_MESSAGE for an answer without a token', async () => {
    expect((await failure('odd')).code).toBe('BAD_MESSAGE');
  });

  it('fails with UNAUTHENTICATED, the network error as cause, when the relay is unreachable', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const e = await failure('ok', `http://127.0.0.1:${port}`);
    expect(e.code).toBe('UNAUTHENTICATED');
    expect(e.cause).toBeInstanceOf(Error);
  });
});
