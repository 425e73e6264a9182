import type { BucketInfo } from '../../relay';
import type { RelayClient } from './client';

export interface InspectResult {
  info: BucketInfo;
  health: { ok: boolean; connections?: number; residentBuckets?: number };
}

/** `mittsync inspect <bucket>`: the bucket's size and checkpoint, its replicas, the relay's health. */
export async function runInspect(client: RelayClient, bucket: string): Promise<InspectResult> {
  const health = await client.health();
  const info = await client.existing(bucket);
  return { info, health };
}

/** The human-readable form of {@link runInspect}'s result. */
export function formatInspect(relayUrl: string, r: InspectResult): string {
  const { info, health } = r;
  const rows: [string, string][] = [
    ['bucket', info.bucket],
    [
      'relay',
      `${relayUrl} (${health.ok ? 'healthy' : 'NOT HEALTHY'}${health.connections === undefined ? '' : `, ${health.connections} connections`}${health.residentBuckets === undefined ? '' : `, ${health.residentBuckets} buckets in memory`})`,
    ],
    ['entries', `${info.entries.toLocaleString('en-US')} live`],
    ['head seq', String(info.head)],
    ['epoch', info.epoch],
    ['horizon', `${info.horizon} (tombstones up to this seq purged)`],
    ['subscribers', String(info.subscribers)],
  ];
  const width = Math.max(...rows.map(([k]) => k.length)) + 2;
  let out = rows.map(([k, v]) => `${k.padEnd(width)}${v}`).join('\n');
  out += '\n';
  // Replicas: printed when the relay's info lists them (a relay with the admin API); this
  // relay's info route alone does not know them.
  if (info.replicas === undefined) {
    out += `${'replicas'.padEnd(width)}(not reported by this relay)\n`;
  } else {
    out += `replicas (${info.replicas.length})\n`;
    for (const rep of info.replicas) {
      const parts = [
        rep.replicaId,
        rep.policy ?? 'replica',
        rep.checkpoint === undefined ? '' : `checkpoint ${rep.checkpoint}`,
        rep.lastSeen === undefined ? '' : `last seen ${new Date(rep.lastSeen).toISOString()}`,
      ].filter((p) => p !== '');
      out += `  ${parts.join('  ')}\n`;
    }
  }
  return out;
}
