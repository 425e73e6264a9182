// Runs in the pack test's fresh project (see ../pack-test.mjs), against the packed packages:
// node sync.mjs <relay http url> <secret>
import { execFileSync } from 'node:child_process';
import { MemoryReplicaStorage, Replica } from '@mittsync/core';
import { createClient } from '@mittsync/peer';
import { signToken } from '@mittsync/relay';
import { WebSocketTransport } from '@mittsync/relay/node';

const [httpUrl, secret] = process.argv.slice(2);
const url = `${httpUrl.replace(/^http/, 'ws')}/v1/sync`;
const open = async (replicaId) =>
  Replica.open({
    storage: new MemoryReplicaStorage(),
    replicaId,
    transport: new WebSocketTransport({
      url,
      token: await signToken(secret, { sub: replicaId, read: ['*'], write: ['*'] }),
    }),
  });

const writer = await open('packWriter');
await writer.put('todos', 't1', { title: 'milk', done: false }, { ack: 'relay' });
await writer.put('todos', 't2', { title: 'bread', done: true }, { ack: 'relay' });

const reader = await open('packReader');
await reader.whenReady('todos');
const t1 = await reader.get('todos', 't1');
if (JSON.stringify(t1?.value) !== JSON.stringify({ title: 'milk', done: false }))
  throw new Error(`the joining replica read ${JSON.stringify(t1)}`);

const token = await signToken(secret, { sub: 'packCli', read: ['*'] });
const exported = execFileSync(
  'node_modules/.bin/mittsync',
  ['export', 'todos', '--relay', httpUrl, '--token', token, '--quiet'],
  {
    encoding: 'utf8',
  },
);
const expected =
  '{"key":"t1","value":{"title":"milk","done":false}}\n{"key":"t2","value":{"title":"bread","done":true}}\n';
if (exported !== expected) throw new Error(`mittsync export printed ${JSON.stringify(exported)}`);
if (typeof createClient !== 'function') throw new Error('@mittsync/peer has no createClient');

await writer.close();
await reader.close();
console.log(
  'pack test: a replica of the packed core synced through the packed relay; the packed CLI exported it',
);
