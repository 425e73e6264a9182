import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Replica } from '@mittsync/core';
import { afterAll, expect, it } from 'vitest';
import { signToken } from '../auth';
import { DEFAULT_RELAY_LIMITS } from '../limits';
import { parseMetrics } from '../metrics';
import {
  createNodeSocket,
  eventually,
  fillBucket,
  openReplica,
  type RelayUnderTest,
  rawClient,
  rssMb,
  sleep,
  startPageAttack,
} from '../testing';
import { type RelayProcess, spawnRelayProcess } from './process';
import { type NodeRelay, startNodeRelay } from './server';

const secret = 'page-abuse-secret-page-abuse-secret!';
const cleanup: (() => Promise<void> | void)[] = [];

afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn();
});

const underTest = (r: { url: string; httpUrl: string }): RelayUnderTest => ({
  url: r.url,
  httpUrl: r.httpUrl,
  createSocket: createNodeSocket,
  makeToken: (c) => signToken(secret, c),
  close: async () => undefined,
});

async function metrics(httpUrl: string): Promise<Map<string, number>> {
  return parseMetrics(await (await fetch(`${httpUrl}/metrics`)).text());
}

it('keeps its memory bounded and live traffic flowing while 20 clients request 36 MB of pages and never read them', async () => {
  const proc: RelayProcess = await spawnRelayProcess({
    secret,
    // Only the page caps may refuse the attackers here, not the per-address request count.
    limits: { httpRequestsPerAddressPerMinute: 1_000_000 },
  });
  cleanup.push(() => proc.stop());
  const pid = proc.child.pid as number;
  const relay = underTest(proc);
  // 10,000 values of 3.6 kB: one unbounded page of this bucket is about 36 MB.
  const filler = await relay.makeToken({ sub: 'filler', read: ['*'], write: ['*'] });
  await fillBucket({
    httpUrl: proc.httpUrl,
    bucket: 'big',
    token: filler,
    sub: 'filler',
    count: 10_000,
    valueBytes: 3_600,
  });

  const writer = await openReplica(relay, { sub: 'live-writer' });
  const reader = await openReplica(relay, { sub: 'live-reader' });
  const replicas: Replica[] = [writer, reader];
  cleanup.push(() => Promise.all(replicas.map((r) => r.close())).then(() => undefined));
  await reader.openBucket('live');
  await reader.whenReady('live');
  const seen = new Set<string>();
  reader.onChange((b, entries) => {
    if (b === 'live') for (const e of entries) seen.add(e.key);
  });
  await sleep(200);
  const baseline = rssMb(pid) ?? 0;

  // 20 attackers sharing one read token, a new unread request each every 250 ms, half gzip.
  // A page of 1 MiB fits in loopback socket buffers, so the relay sees each one finish.
  const attackToken = await relay.makeToken({ sub: 'attacker', read: ['big'] });
  const attack = startPageAttack({
    httpUrl: proc.httpUrl,
    bucket: 'big',
    token: attackToken,
    attackers: 20,
    everyMs: 250,
    gzip: true,
  });
  cleanup.push(() => attack.stop());
  let peak = baseline;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssMb(pid) ?? 0);
    // Already failed: spare the machine the rest.
    if (peak - baseline > 600) attack.stop();
  }, 25);
  cleanup.push(() => clearInterval(sampler));

  const writes = 100;
  for (let i = 0; i < writes; i++) {
    await writer.put('live', `w${i}`, i);
    await sleep(20);
  }
  // The writer/reader pair keeps syncing through the attack: every write is observed.
  await eventually(`the reader saw all ${writes} writes`, () => seen.size === writes, 30_000);
  const during = await metrics(proc.httpUrl);
  clearInterval(sampler);
  attack.stop();

  // Before pages were bounded, each unread request held its 36 MB answer (and its copies).
  expect(
    peak - baseline,
    `relay RSS peak ${peak.toFixed(0)} MB, baseline ${baseline.toFixed(0)} MB`,
  ).toBeLessThan(150);
  // Every request was answered (a page, or a refusal once pages pile up), each page within the
  // byte budget (plus its last entry and the framing), never more than the caps at once.
  expect(attack.answers.filter((a) => a.status === 200).length).toBeGreaterThan(0);
  const perPage = DEFAULT_RELAY_LIMITS.maxPageBytes + 64 * 1024;
  expect(during.get('mittsync_http_page_bytes_in_flight_peak')).toBeLessThanOrEqual(
    DEFAULT_RELAY_LIMITS.maxPagesInFlightPerPrincipal * perPage,
  );
  // Closed sockets free their slots.
  await eventually(
    'no page in flight',
    async () => (await metrics(proc.httpUrl)).get('mittsync_http_pages_in_flight') === 0,
    30_000,
  );
}, 120_000);

let node: NodeRelay;
const nodeDir = mkdtempSync(join(tmpdir(), 'mittsync-abuse-'));

async function startTimeoutRelay(): Promise<NodeRelay> {
  node = await startNodeRelay({
    port: 0,
    data: nodeDir,
    auth: { secret },
    limits: {
      httpHeadersTimeoutMs: 300,
      httpRequestTimeoutMs: 600,
      httpIdleTimeoutMs: 800,
      maxPagesInFlight: 2,
      // Pages larger than loopback socket buffers (about 2 MB) so unread ones stay in flight.
      maxPageBytes: 4 * 1024 * 1024,
    },
  });
  cleanup.push(async () => {
    await node.close();
    rmSync(nodeDir, { recursive: true, force: true });
  });
  return node;
}

it('closes half-sent requests at the header timeout, cuts unread pages at the idle timeout and keeps WebSockets past the request timeout', async () => {
  const n = await startTimeoutRelay();
  const relay = underTest(n);

  // Headers never finished: answered 408 and closed (Node's default would wait 60 s).
  const half = connect(n.port, '127.0.0.1');
  let halfAnswer = '';
  let halfClosed = false;
  half.on('data', (d: Buffer) => {
    halfAnswer += d.toString('latin1');
  });
  half.on('close', () => {
    halfClosed = true;
  });
  half.on('error', () => undefined);
  half.write('GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: ');
  await eventually('the half-sent request is closed', () => halfClosed, 10_000);
  expect(halfAnswer).toMatch(/^HTTP\/1\.1 408/);

  // A WebSocket stays open past the request timeout and still answers.
  const ws = await rawClient(relay, 'ws-stays');
  await sleep(1_500);
  ws.sendRaw({ type: 'sub', bucket: 'after-timeout', subId: 1, since: 0, flush: false });
  await eventually(
    'the socket still answers',
    () => ws.received.some((m) => m.type === 'subscribed'),
    10_000,
  );
  ws.close();

  // Pages nobody reads hold the relay's two page slots; a third request is refused with
  // Retry-After; the idle timeout then cuts the stalled sockets and frees the slots.
  const token = await relay.makeToken({ sub: 'filler', read: ['*'], write: ['*'] });
  await fillBucket({
    httpUrl: n.httpUrl,
    bucket: 'big',
    token,
    sub: 'filler',
    count: 600,
    valueBytes: 8_000,
  });
  const attack = startPageAttack({ httpUrl: n.httpUrl, bucket: 'big', token, attackers: 2 });
  cleanup.push(() => attack.stop());
  await eventually('two pages in flight', () => n.relay.pageFlights.count === 2);
  const over = await fetch(`${n.httpUrl}/v1/buckets/big/pages?limit=10000`, {
    headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
  });
  expect([
    over.status,
    over.headers.get('retry-after'),
    ((await over.json()) as { code: string }).code,
  ]).toEqual([429, '1', 'RATE_LIMITED']);
  await eventually(
    'the stalled pages are cut',
    () => n.relay.pageFlights.count === 0 && n.relay.pageFlights.bytes === 0,
    10_000,
  );
  // Clients that hang up at any point before their page is sent leave no slot behind.
  for (let round = 0; round < 20; round++) {
    const quitters = startPageAttack({ httpUrl: n.httpUrl, bucket: 'big', token, attackers: 2 });
    await sleep(round % 5);
    quitters.stop();
  }
  // The relay may take a quitter's request after its client is gone (the request bytes were
  // sent before the close): wait until it has seen every connection end, not only until no
  // slot is held at one instant, which is also true before it has read the requests.
  const openConnections = () =>
    new Promise<number>((resolve, reject) =>
      n.server.getConnections((err, count) => (err ? reject(err) : resolve(count))),
    );
  await eventually(
    'every slot of a client that hung up is freed',
    async () => (await openConnections()) === 0 && n.relay.pageFlights.count === 0,
    10_000,
  );
  const ok = await fetch(`${n.httpUrl}/v1/buckets/big/pages?limit=10000`, {
    headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
  });
  const page = (await ok.json()) as { entries: unknown[]; next: string | null };
  // One page holds about maxPageBytes (4 MiB) of 8 kB values, not all 600.
  expect([ok.status, page.entries.length < 600, page.next !== null]).toEqual([200, true, true]);
}, 60_000);
