import { decodeFrame, type Entry, MemoryReplicaStorage, type PageMsg, Replica } from '@mittsync/core';
import { devToken as peerDevToken } from '@mittsync/peer';
import { WebSocketTransport } from '@mittsync/relay/node';
import { digestRows, type RowsDigest } from '../../apps/demo/src/rows-hash';
import type { RelayProcess } from './relay-process';

/** The peer's dev token source per relay: it keeps each replica's last token to renew it. */
const sources = new Map<string, ReturnType<typeof peerDevToken>>();

/**
 * A dev token from the relay's dev endpoint: for replica `sub` (the relay hands an id to its
 * first caller only; later calls renew with the token they got), or for a fresh replica.
 */
export async function devToken(relay: RelayProcess, sub?: string): Promise<string> {
  if (sub === undefined) {
    const res = await fetch(`${relay.httpUrl}/v1/dev/token`);
    if (!res.ok) throw new Error(`dev token: HTTP ${res.status}`);
    return ((await res.json()) as { token: string }).token;
  }
  let source = sources.get(relay.httpUrl);
  if (source === undefined) {
    source = peerDevToken(relay.httpUrl);
    sources.set(relay.httpUrl, source);
  }
  return source({ replicaId: sub });
}

/** One page of `bucket` from the relay's HTTP API. */
async function relayPage(relay: RelayProcess, bucket: string, q: URLSearchParams): Promise<PageMsg> {
  // A fresh replica id each time: the checker only reads.
  const token = await devToken(relay);
  const res = await fetch(`${relay.httpUrl}/v1/buckets/${encodeURIComponent(bucket)}/pages?${q}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  const body = decodeFrame(new Uint8Array(await res.arrayBuffer())) as PageMsg | { type: string };
  if (res.status !== 200 || body.type !== 'page') {
    throw new Error(`page request failed: HTTP ${res.status} ${JSON.stringify(body)}`);
  }
  return body as PageMsg;
}

/** Every live entry of `bucket` on the relay, read page by page over HTTP. */
export async function relayEntries(relay: RelayProcess, bucket: string): Promise<Entry[]> {
  const out: Entry[] = [];
  let after: string | undefined;
  for (;;) {
    const q = new URLSearchParams({ limit: '10000' });
    if (after !== undefined) q.set('after', after);
    const page = await relayPage(relay, bucket, q);
    for (const e of page.entries) if (!e.deleted) out.push(e);
    if (page.next === null) return out;
    after = page.next;
  }
}

/** The relay's head seq of `bucket`: the checkpoint of a replica that has every write. */
export async function relayHead(relay: RelayProcess, bucket: string): Promise<number> {
  const page = await relayPage(relay, bucket, new URLSearchParams({ limit: '1' }));
  if (page.head === undefined) throw new Error('the relay sent a page without its head seq');
  return page.head;
}

/** Count and digest of the relay's copy of `bucket`, computed like the page's. */
export async function relayDigest(relay: RelayProcess, bucket: string): Promise<RowsDigest> {
  const entries = await relayEntries(relay, bucket);
  return digestRows(entries.map((e) => [e.key, e.value] as const));
}

/** The relay's values of `keys` (undefined where absent or deleted). */
export async function relayValues(relay: RelayProcess, bucket: string): Promise<Map<string, unknown>> {
  const entries = await relayEntries(relay, bucket);
  return new Map(entries.map((e) => [e.key, e.value]));
}

/**
 * Writes `rows` rows into `bucket` from a Node replica (the core `Replica` over the relay's
 * WebSocket), in large transactions, and resolves once the relay has committed them all.
 * Rows are the demo's inventory items, `sku-000000` onwards, the same the demo's seed writes.
 */
export async function seedRelay(
  relay: RelayProcess,
  bucket: string,
  rows: number,
  item: (n: number) => unknown,
): Promise<void> {
  const sub = `e2e-seeder-${Math.random().toString(36).slice(2, 8)}`;
  const replica = await Replica.open({
    storage: new MemoryReplicaStorage(),
    transport: new WebSocketTransport({ url: relay.syncUrl, getToken: () => devToken(relay, sub) }),
    replicaId: sub,
    pushBatch: 2000,
  });
  try {
    const batch = 10_000;
    const acks: Promise<unknown>[] = [];
    for (let start = 0; start < rows; start += batch) {
      const writes = [];
      for (let n = start; n < Math.min(rows, start + batch); n++) {
        writes.push({ key: `sku-${String(n).padStart(6, '0')}`, value: item(n) as never });
      }
      acks.push(replica.transact(bucket, writes, { ack: 'relay' }));
    }
    await Promise.all(acks);
  } finally {
    await replica.close();
  }
}
