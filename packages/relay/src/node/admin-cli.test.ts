import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signToken } from '../auth';
import { nodeSocketTarget, RawClient } from '../testing';
import { adminMain, adminRequest } from './admin-cli';
import { type NodeRelay, startNodeRelay } from './server';

const secret = 'admin-cli-secret-admin-cli-secret!';

describe('mittsync admin', () => {
  let relay: NodeRelay;
  let token: string;
  const run = async (...args: string[]) => {
    let out = '';
    const code = await adminMain([...args, '--url', relay.httpUrl, '--token', token], (s) => {
      out += s;
    });
    return { code, out };
  };

  beforeAll(async () => {
    relay = await startNodeRelay({ port: 0, host: '127.0.0.1', data: ':memory:', auth: { secret } });
    token = await signToken(secret, { sub: 'ops', admin: true });
  });
  afterAll(async () => {
    await relay.close();
  });

  it('lists buckets and shows a bucket with its replicas', async () => {
    const w = await signToken(secret, { sub: 'writer', read: ['*'], write: ['*'] });
    const { client } = await RawClient.open(nodeSocketTarget(relay.url), w, 'writer');
    client.send({ type: 'sub', bucket: 'orders/2026', since: 0, flush: false, subId: 1 });
    await client.next('subscribed');
    client.send({
      type: 'push',
      bucket: 'orders/2026',
      ops: [client.op('a', 1), client.op('a', null, 'del')],
    });
    await client.next('ack');
    const list = await run('buckets');
    expect(list.code).toBe(0);
    expect(list.out).toMatch(/orders\/2026\thead 2\tentries 1\ttombstones 1\treplicas 1/);
    const one = await run('bucket', 'orders/2026');
    expect(one.out).toMatch(/writer\treplica\tacked 0\tconnected/);
    const json = await run('replica', 'orders/2026', 'writer', '--json');
    expect(JSON.parse(json.out)).toMatchObject({
      bucket: 'orders/2026',
      replicaId: 'writer',
      connected: true,
    });
    client.close();
  });

  it('sets control, allow and deny lists, and resets only with --yes', async () => {
    expect((await run('set', 'b1', 'in', 'off')).code).toBe(0);
    expect((await run('deny', 'b1', 'out', 'group:guests', 'sub:eve')).code).toBe(0);
    const shown = JSON.parse((await run('bucket', 'b1', '--json')).out);
    expect(shown.control).toEqual({
      in: { enabled: false, allow: [], deny: [] },
      out: { enabled: true, allow: [], deny: ['group:guests', 'sub:eve'] },
    });
    expect((await run('reset', 'b1')).code).toBe(2);
    const reset = await run('reset', 'b1', '--yes', '--json');
    expect(JSON.parse(reset.out).epoch).not.toBe(shown.epoch);
    expect((await run('allow', 'b1', 'sideways', 'sub:x')).code).toBe(2);
    expect((await run('deny', 'b1', 'in', 'nobody')).code).toBe(1);
  });

  it('builds requests with the bucket as one encoded path segment', () => {
    expect(adminRequest(['replica', 'a/b', 'r1'])).toEqual({
      method: 'GET',
      path: '/v1/admin/buckets/a%2Fb/replicas/r1',
    });
    expect(adminRequest(['allow', 'x', 'in'])).toMatchObject({ body: { in: { allow: [] } } });
  });
});
