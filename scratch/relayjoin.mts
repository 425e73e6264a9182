import { mkdtempSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryReplicaStorage, Replica } from '@mittsync/core';
import { startNodeRelay, WebSocketTransport } from '@mittsync/relay/node';

const N = Number(process.argv[2] ?? 100000);
const relay = await startNodeRelay({
  port: 0,
  data: mkdtempSync(join(tmpdir(), 'rj-')),
  dev: true,
  limits: {
    connectionsPerAddressPerMinute: 1e6,
    httpRequestsPerAddressPerMinute: 1e6,
    opsPerConnectionPerSecond: 1e7,
  } as never,
});
const tok = async (id: string) =>
  ((await (await fetch(`${relay.httpUrl}/v1/dev/token?sub=${id}`)).json()) as { token: string }).token;
const open = (id: string) =>
  Replica.open({
    storage: new MemoryReplicaStorage(),
    transport: new WebSocketTransport({ url: relay.url, getToken: () => tok(id) }),
    replicaId: id,
  });
const key = (i: number) => `k${String(i).padStart(7, '0')}`;
const seeder = await open('seeder');
await seeder.openBucket('b');
for (let s = 0; s < N; s += 5000) {
  const w = [];
  for (let i = s; i < Math.min(N, s + 5000); i++)
    w.push({ key: key(i), value: { name: `item ${i}`, qty: i % 1000, rev: 0, note: 'n'.repeat(56) } });
  await seeder.transact('b', w, { ack: 'relay' });
}
await seeder.close();
const writer = await open('writer');
await writer.openBucket('b');
let stop = false;
let rev = 0;
const wloop = (async () => {
  while (!stop && process.env.WRITER === '1') {
    rev++;
    await writer.transact(
      'b',
      Array.from({ length: 5 }, () => {
        const i = Math.floor(Math.random() * N);
        return { key: key(i), value: { name: `item ${i}`, qty: 1, rev, note: 'n'.repeat(56) } };
      }),
    );
    await new Promise((r) => setTimeout(r, 10));
  }
})();
const session = new Session();
session.connect();
await session.post('Profiler.enable');
await session.post('Profiler.setSamplingInterval', { interval: 200 });
await session.post('Profiler.start');
const c0 = process.cpuUsage();
const t0 = performance.now();
const j = await open('joiner');
await j.openBucket('b');
await j.whenReady('b');
const ms = performance.now() - t0;
stop = true;
await wloop;
const cpu = process.cpuUsage(c0);
const { profile } = await session.post('Profiler.stop');
writeFileSync('/tmp/relayjoin.cpuprofile', JSON.stringify(profile));
console.log(
  `node join ${N}: ${ms.toFixed(0)} ms, cpu ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms (relay + node replica in one process)`,
);
await j.close();
await writer.close();
await relay.close();
