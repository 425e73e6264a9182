import { MemoryReplicaStorage, Replica } from '@mittsync/core';
import { signToken } from '@mittsync/relay';
import { startNodeRelay, WebSocketTransport } from '@mittsync/relay/node';
import type { Metric } from '../metric';

const SECRET = 'bench-tombstones-secret-0123456789abcdef';

interface BucketInfo {
  head: number;
  tombstones: number;
  replicaList: { replicaId: string; acked: number; connected: boolean }[];
}

/**
 * Tombstones the relay still holds after `deletes` keys were written and deleted by one
 * writer, with two more replicas following the bucket: all three connected (`silent` false),
 * or one of them gone offline before the deletes (within the retention period, so it keeps
 * holding them). Real Node relay (SQLite in memory), real Replicas over WebSockets; the count
 * is read through the admin API once every connected replica has acknowledged the head.
 */
async function tombstonesHeld(deletes: number, silent: boolean): Promise<number> {
  const relay = await startNodeRelay({
    port: 0,
    host: '127.0.0.1',
    data: ':memory:',
    auth: { secret: SECRET },
  });
  const admin = await signToken(SECRET, { sub: 'bench-admin', admin: true });
  const bucket = 'tombstones';
  const open = (sub: string) =>
    Replica.open({
      storage: new MemoryReplicaStorage(),
      transport: new WebSocketTransport({
        url: relay.url,
        getToken: () => signToken(SECRET, { sub, read: ['*'], write: ['*'] }),
      }),
      replicaId: sub,
    });
  const replicas = await Promise.all(['writer', 'follower', 'laggard'].map(open));
  const [writer, , laggard] = replicas as [Replica, Replica, Replica];
  const info = async (): Promise<BucketInfo> => {
    const res = await fetch(`${relay.httpUrl}/v1/admin/buckets/${bucket}`, {
      headers: { authorization: `Bearer ${admin}`, accept: 'application/json' },
    });
    return (await res.json()) as BucketInfo;
  };
  try {
    for (const r of replicas) {
      await r.openBucket(bucket);
      await r.whenReady(bucket);
    }
    const batch = 1000;
    for (let i = 0; i < deletes; i += batch) {
      const n = Math.min(batch, deletes - i);
      await writer.transact(
        bucket,
        Array.from({ length: n }, (_, j) => ({ key: `k${i + j}`, value: { n: i + j } })),
        { ack: 'relay' },
      );
    }
    if (silent) laggard.disconnect({ reconnect: false });
    for (let i = 0; i < deletes; i += batch) {
      const n = Math.min(batch, deletes - i);
      await writer.transact(
        bucket,
        Array.from({ length: n }, (_, j) => ({ key: `k${i + j}`, delete: true })),
        { ack: 'relay' },
      );
    }
    // Every connected replica reports its checkpoint within about a second of reaching it.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const now = await info();
      const live = now.replicaList.filter((r) => r.connected);
      if (live.length === (silent ? 2 : 3) && live.every((r) => r.acked >= now.head)) return now.tombstones;
      if (Date.now() > deadline)
        throw new Error(`replicas never acknowledged the head: ${JSON.stringify(now)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await Promise.all(replicas.map((r) => r.close()));
    await relay.close();
  }
}

const FULL = 10_000;
const QUICK = 2_000;

export const tombstoneMetrics: Metric[] = [
  {
    name: 'tombstones_held_all_active',
    quickName: 'tombstones_held_all_active_2k',
    unit: 'tombstones',
    description: `tombstones the Node relay holds after one writer sets then deletes ${FULL.toLocaleString('en')} keys (${QUICK.toLocaleString('en')} under --quick) while three replicas stay connected and report their checkpoints (ckpt); read through the admin API once all acknowledged the head. Distributed GC: expected 0`,
    target: { value: 0, better: 'lower' },
    run: ({ quick }) => tombstonesHeld(quick ? QUICK : FULL, false),
  },
  {
    name: 'tombstones_held_one_silent',
    quickName: 'tombstones_held_one_silent_2k',
    unit: 'tombstones',
    description: `the same ${FULL.toLocaleString('en')} deletes (${QUICK.toLocaleString('en')} under --quick) with one of the three replicas offline since before them (within the retention period): it may resume, so every tombstone is held for it (expected: all of them)`,
    run: ({ quick }) => tombstonesHeld(quick ? QUICK : FULL, true),
  },
];
