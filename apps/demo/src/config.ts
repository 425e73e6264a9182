import { SUBSCRIPTION_POLICIES, type SubscriptionPolicy } from '@mittsync/peer';

/**
 * What the demo page is told by its URL. Every option has a default that makes
 * `http://localhost:8787/` the plain demo; the others let one browser act as several devices
 * and let the end-to-end tests steer it.
 *
 * - `bucket`: the bucket the table shows (default `inventory`).
 * - `db`: the IndexedDB database, i.e. the device. Tabs with the same `db` share one replica;
 *   another `db` is another device with its own replica (default `mittsync`).
 * - `hosting`: `dedicated` forces the per-tab worker fallback with leader election (no SharedWorker).
 * - `relay`: the relay URL (default: this page's origin, which serves the demo).
 * - `pageSize`, `parallel`: catch-up tuning (entries per downloaded page, ranges in parallel).
 * - `open=0`: create the client but open no bucket until told to (tests start joins by hand).
 * - `policy`: how this device holds the bucket: `replica` (default), `readOnly` or `copy`.
 * - `rows`: a key prefix: this device's dev token may only read and write the bucket's keys
 *   under it (row-level access), e.g. `rows=user-42/`.
 */
export interface DemoConfig {
  bucket: string;
  db: string;
  hosting: 'auto' | 'dedicated';
  relay: string;
  pageSize: number | undefined;
  parallel: number | undefined;
  autoOpen: boolean;
  policy: SubscriptionPolicy | undefined;
  rows: string | undefined;
}

function positive(v: string | null): number | undefined {
  if (v === null) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

export function readConfig(loc: Location = location): DemoConfig {
  const q = new URLSearchParams(loc.search);
  return {
    bucket: q.get('bucket') || 'inventory',
    db: q.get('db') || 'mittsync',
    hosting: q.get('hosting') === 'dedicated' ? 'dedicated' : 'auto',
    relay: q.get('relay') || loc.origin,
    pageSize: positive(q.get('pageSize')),
    parallel: positive(q.get('parallel')),
    autoOpen: q.get('open') !== '0',
    policy: SUBSCRIPTION_POLICIES.find((p) => p === q.get('policy')),
    rows: q.get('rows') || undefined,
  };
}

/** The URL of this page with some parameters changed (`null` removes one). */
export function urlWith(changes: Record<string, string | null>, loc: Location = location): string {
  const u = new URL(loc.href);
  for (const [k, v] of Object.entries(changes)) {
    if (v === null) u.searchParams.delete(k);
    else u.searchParams.set(k, v);
  }
  return u.toString();
}
