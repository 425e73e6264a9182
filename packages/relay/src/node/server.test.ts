import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
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

  it('refuses dev mode on a non-loopback interface unless told it is meant', async () => {
    await expect(
      startNodeRelay({ port: 0, data: ':memory:', dev: true, host: '0.0.0.0' }),
    ).rejects.toMatchObject({
      message: expect.stringContaining('--dev-allow-remote'),
    });
    const warnings: string[] = [];
    const remote = await start({
      auth: undefined,
      dev: true,
      host: '0.0.0.0',
      devAllowRemote: true,
      log: (level, msg) => warnings.push(`${level} ${msg}`),
    });
    expect(warnings.some((w) => w.startsWith('warn DEV MODE ON 0.0.0.0: ANYONE'))).toBe(true);
    expect((await fetch(`http://127.0.0.1:${remote.port}/v1/dev/token`)).status).toBe(200);
    expect((await start({ auth: undefined, dev: true, host: 'localhost' })).devSecret).toBeDefined();
  });

  it('keeps the dev secret and the ids it issued in the data directory, apart from --secret', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mittsync-dev-'));
    dirs.push(dir);
    const first = await startNodeRelay({ port: 0, data: dir, dev: true, auth: { secret } });
    expect(first.devSecret).not.toBe(secret);
    const a = (await (await fetch(`${first.httpUrl}/v1/dev/token?sub=rKept`)).json()) as { token: string };
    await first.close();
    const second = await start({ data: dir, dev: true });
    expect(second.devSecret).toBe(first.devSecret);
    // Still its id after a restart: only its token renews it.
    expect((await fetch(`${second.httpUrl}/v1/dev/token?sub=rKept`)).status).toBe(403);
    const renewed = await fetch(`${second.httpUrl}/v1/dev/token?sub=rKept`, {
      headers: { authorization: `Bearer ${a.token}` },
    });
    expect(renewed.status).toBe(200);
  });

  it('never serves dotfiles or dot-directories from --static, however encoded', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mittsync-static-'));
    dirs.push(dir);
    mkdirSync(join(dir, 'a'));
    mkdirSync(join(dir, '.git'));
    writeFileSync(join(dir, 'index.html'), '<!doctype html><title>demo</title>');
    writeFileSync(join(dir, '.env'), 'SECRET=1');
    writeFileSync(join(dir, '.git', 'config'), '[core]');
    writeFileSync(join(dir, 'a', 'ok.txt'), 'ok');
    const r = await start({ staticDir: dir });
    for (const path of [
      '/.env',
      '/%2eenv',
      '/%2Eenv',
      '/a/..%2f.env',
      '/a/%2e%2e/.env',
      '/.git/config',
      '/a%2f.git/config',
      '/%252eenv',
    ]) {
      const res = await fetch(`${r.httpUrl}${path}`);
      const text = await res.text();
      expect(res.status, path).toBe(404);
      expect(text, path).not.toContain('SECRET');
    }
    expect(await (await fetch(`${r.httpUrl}/a/ok.txt`)).text()).toBe('ok');
    // A bucket may start with a dot: the API still answers for it.
    expect((await fetch(`${r.httpUrl}/v1/buckets/.x/pages`)).status).toBe(401);
  });

  it('refuses to start with the data directory inside the static directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mittsync-static-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'index.html'), '<!doctype html>');
    for (const data of [join(dir, '.mittsync'), dir, join(dir, 'a', '..', 'b')]) {
      await expect(start({ staticDir: dir, data }), data).rejects.toMatchObject({
        message: expect.stringMatching(/data directory .* is inside the static directory/),
      });
    }
    // Through a symlink to the static directory too.
    const link = join(tmpdir(), `mittsync-link-${process.pid}`);
    symlinkSync(dir, link);
    dirs.push(link);
    await expect(start({ staticDir: link, data: join(dir, 'data') })).rejects.toMatchObject({
      message: expect.stringContaining(realpathSync(dir)),
    });
    const outside = mkdtempSync(join(tmpdir(), 'mittsync-data-'));
    dirs.push(outside);
    await expect(start({ staticDir: dir, data: outside })).resolves.toBeDefined();
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
