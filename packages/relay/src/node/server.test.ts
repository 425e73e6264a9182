import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROTOCOL_VERSION } from '@mittsync/core';
import { encodeHlc } from '@mittsync/core/model';
import { afterAll, describe, expect, it } from 'vitest';
import { signToken } from '../auth';
import { parseMetrics } from '../metrics';
import { nodeSocketTarget, RawClient, UpgradeRefused } from '../testing';
import { type NodeRelay, startNodeRelay } from './server';

const secret = 'server-test-secret-server-test-secret';
const started: NodeRelay[] = [];
const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(started.map((r) => r.close()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function start(opts: Parameters<typeof startNodeRelay>[0] = {}): Promise<NodeRelay> {
  const r = await startNodeRelay({ port: 0, data: ':memory:', auth: { secret }, ...opts });
  started.push(r);
  return r;
}

describe('Node relay server', () => {
  it('refuses WebSocket upgrades past the per-address connection rate with HTTP 429', async () => {
    const r = await start({ limits: { connectionsPerAddressPerMinute: 3 } });
    const token = await signToken(secret, { sub: 'a', read: ['*'] });
    const ok = await Promise.all([0, 1, 2].map(() => RawClient.connect(nodeSocketTarget(r.url), { token })));
    const refused = await RawClient.connect(nodeSocketTarget(r.url), { token }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(UpgradeRefused);
    expect(refused).toMatchObject({ status: 429, code: 'RATE_LIMITED' });
    for (const c of ok) c.close();
    const m = parseMetrics(await (await fetch(`${r.httpUrl}/metrics`)).text());
    expect(m.get('mittsync_rejections_total{code="RATE_LIMITED"}')).toBe(1);
  });

  it('accepts a token in the URL only when started with allowQueryToken, and warns about it', async () => {
    const token = await signToken(secret, { sub: 'q', read: ['*'] });
    const strict = await start();
    const refused = await RawClient.connect(nodeSocketTarget(strict.url), { token, tokenIn: 'query' }).catch(
      (e: unknown) => e,
    );
    expect(refused).toMatchObject({ status: 401, code: 'TOKEN_IN_URL' });
    const warnings: string[] = [];
    const lax = await start({ allowQueryToken: true, log: (level, msg) => warnings.push(`${level} ${msg}`) });
    expect(warnings.some((w) => w.startsWith('warn tokens are accepted in URLs'))).toBe(true);
    const c = await RawClient.connect(nodeSocketTarget(lax.url), { token, tokenIn: 'query' });
    c.send({ type: 'hello', v: PROTOCOL_VERSION, replicaId: 'q' });
    await c.next('welcome');
    c.close();
    const page = await fetch(`${lax.httpUrl}/v1/buckets/b/pages?token=${token}`);
    expect(page.status).toBe(200);
  });

  it('refuses HTTP API requests past the per-address request rate with 429', async () => {
    const r = await start({ limits: { httpRequestsPerAddressPerMinute: 5 } });
    const token = await signToken(secret, { sub: 'a', read: ['*'] });
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) {
      const res = await fetch(`${r.httpUrl}/v1/buckets/b/pages`, {
        headers: { authorization: `Bearer ${token}` },
      });
      await res.arrayBuffer();
      statuses.push(res.status);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429]);
  });

  it('accepts HTTP pushes (JSON or msgpack) and answers with the ack after commit', async () => {
    const r = await start();
    const token = await signToken(secret, { sub: 'http-writer', read: ['*'], write: ['*'] });
    const op = (originSeq: number, key: string) => ({
      origin: 'http-writer',
      originSeq,
      key,
      kind: 'set',
      value: { key },
      hlc: encodeHlc(Date.now(), originSeq, 'http-writer'),
    });
    const push = async (body: unknown) => {
      const res = await fetch(`${r.httpUrl}/v1/buckets/todo/ops`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          accept: 'application/json',
        },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    expect(await push({ ops: [op(1, 'a'), op(2, 'b')] })).toEqual({
      status: 200,
      body: { type: 'ack', bucket: 'todo', upTo: 2, seq: 2 },
    });
    expect((await push({ ops: [op(2, 'b')] })).body).toMatchObject({ upTo: 2, seq: 2 }); // deduped
    const foreign = await push({ ops: [{ ...op(3, 'c'), origin: 'someone' }] });
    expect(foreign).toMatchObject({ status: 403, body: { code: 'ORIGIN_MISMATCH' } });
    const wrongBucket = await push({ type: 'push', bucket: 'other', ops: [op(3, 'c')] });
    expect(wrongBucket).toMatchObject({ status: 400, body: { code: 'BAD_MESSAGE' } });
    const page = await fetch(`${r.httpUrl}/v1/buckets/todo/pages?since=1`, {
      headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
    });
    expect(((await page.json()) as { entries: { key: string }[] }).entries.map((e) => e.key)).toEqual(['b']);
    const bad = await fetch(`${r.httpUrl}/v1/buckets/todo/pages?since=-1`, {
      headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
    });
    expect(bad.status).toBe(400);
  });

  it('serves a dev token endpoint only in dev mode, and its tokens work', async () => {
    const plain = await start();
    expect((await fetch(`${plain.httpUrl}/v1/dev/token?sub=x`)).status).toBe(404);
    const warnings: string[] = [];
    const dev = await start({
      auth: undefined,
      dev: true,
      log: (level, msg) => warnings.push(`${level} ${msg}`),
    });
    expect(warnings.some((w) => w.startsWith('warn DEV MODE'))).toBe(true);
    const { token, sub } = (await (await fetch(`${dev.httpUrl}/v1/dev/token?sub=demo-1`)).json()) as {
      token: string;
      sub: string;
    };
    expect(sub).toBe('demo-1');
    // Dev mode lets a dev server on another origin fetch tokens and pages.
    const pre = await fetch(`${dev.httpUrl}/v1/dev/token`, {
      method: 'OPTIONS',
      headers: { origin: 'http://localhost:5173', 'access-control-request-method': 'GET' },
    });
    expect(pre.headers.get('access-control-allow-origin')).toBe('*');
    const same = await fetch(`${plain.httpUrl}/v1/buckets/b/pages`, {
      headers: { origin: 'http://evil.example' },
    });
    expect(same.headers.get('access-control-allow-origin')).toBeNull();
    const c = await RawClient.connect(nodeSocketTarget(dev.url), { token });
    c.send({ type: 'hello', v: PROTOCOL_VERSION, replicaId: 'demo-1' });
    await c.next('welcome');
    c.close();
    await expect(startNodeRelay({ port: 0, data: ':memory:' })).rejects.toMatchObject({
      code: 'UNAUTHENTICATED',
    });
  });

  it('serves a static web app at / next to the API, and health and metrics', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mittsync-static-'));
    dirs.push(dir);
    mkdirSync(join(dir, 'assets'));
    writeFileSync(join(dir, 'index.html'), '<!doctype html><title>demo</title>');
    writeFileSync(join(dir, 'assets', 'app.js'), 'console.log(1)');
    const r = await start({ staticDir: dir });
    expect(await (await fetch(`${r.httpUrl}/`)).text()).toContain('<title>demo</title>');
    expect(await (await fetch(`${r.httpUrl}/assets/app.js`)).text()).toBe('console.log(1)');
    expect(await (await fetch(`${r.httpUrl}/some/client/route`)).text()).toContain('<title>demo</title>');
    expect((await fetch(`${r.httpUrl}/v1/buckets/x/pages`)).status).toBe(401);
    expect((await fetch(`${r.httpUrl}/v1/nothing-here`)).status).toBe(404);
    const health = await fetch(`${r.httpUrl}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ ok: true });
    const metrics = await fetch(`${r.httpUrl}/metrics`);
    expect(metrics.headers.get('content-type')).toContain('text/plain');
    expect(await metrics.text()).toContain('# TYPE mittsync_commit_seconds histogram');
  });

  it('keeps data in a file in the data directory across restarts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mittsync-data-'));
    dirs.push(dir);
    const token = await signToken(secret, { sub: 'w', read: ['*'], write: ['*'] });
    const first = await startNodeRelay({ port: 0, data: dir, auth: { secret } });
    const { client } = await RawClient.open(nodeSocketTarget(first.url), token, 'w');
    client.send({ type: 'push', bucket: 'b', ops: [client.op('k', 'v')] });
    await client.next('ack');
    await first.close();
    await expect(
      startNodeRelay({ port: 0, data: dir, auth: { secret } }).then((r) => r.close()),
    ).resolves.toBe(undefined);
    const second = await start({ data: dir });
    const res = await fetch(`${second.httpUrl}/v1/buckets/b/pages`, {
      headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
    });
    expect(((await res.json()) as { entries: unknown[] }).entries).toEqual([
      expect.objectContaining({ key: 'k', value: 'v', seq: 1 }),
    ]);
  });
});
