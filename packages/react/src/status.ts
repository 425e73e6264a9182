import type { BucketStatus, ClientStatus, Phase } from '@mittsync/peer';

/** What {@link useStatus} returns: the sync state a status badge shows. */
export interface SyncStatus {
  /** The relay connection (`connecting` until the worker first reports). */
  connection: ClientStatus['connection'];
  /** The bucket's phase (`joining`, `resuming`, `flushing`, `ready`...); null for the whole client or before the bucket is open. */
  phase: Phase | null;
  /** The bucket has caught up once (for the whole client: every open bucket has). */
  ready: boolean;
  /** Local writes the relay has not acknowledged yet (the bucket's, or all buckets'). */
  pending: number;
  /** The bucket's last sync error, else the client's storage error; null when none. */
  lastError: { code: string; message: string } | null;
  /** False when the replica keeps nothing across reloads (memory storage). */
  persistent: boolean;
}

const STARTING: SyncStatus = {
  connection: 'connecting',
  phase: null,
  ready: false,
  pending: 0,
  lastError: null,
  persistent: true,
};

/** The {@link SyncStatus} of `bucket` (or of every bucket) in a client status. */
export function summarize(s: ClientStatus | null, bucket: string | undefined): SyncStatus {
  if (s === null) return STARTING;
  if (bucket !== undefined) {
    const b = s.buckets.find((x) => x.bucket === bucket);
    return {
      connection: s.connection,
      phase: b?.phase ?? null,
      ready: b?.ready ?? false,
      pending: b?.pending ?? 0,
      lastError: b?.lastError ?? s.error,
      persistent: s.persistent,
    };
  }
  const withError = s.buckets.find((x: BucketStatus) => x.lastError !== null);
  return {
    connection: s.connection,
    phase: null,
    ready: s.buckets.length > 0 && s.buckets.every((x) => x.ready),
    pending: s.buckets.reduce((n, x) => n + x.pending, 0),
    lastError: s.error ?? withError?.lastError ?? null,
    persistent: s.persistent,
  };
}

function same(a: SyncStatus, b: SyncStatus): boolean {
  return (
    a.connection === b.connection &&
    a.phase === b.phase &&
    a.ready === b.ready &&
    a.pending === b.pending &&
    a.persistent === b.persistent &&
    a.lastError?.code === b.lastError?.code &&
    a.lastError?.message === b.lastError?.message
  );
}

/**
 * An external store of one summary: `getSnapshot` hands out the previous object while the
 * summary is unchanged, so a status event that moves other counters (a checkpoint, download
 * progress, another bucket) re-renders nothing.
 */
export class StatusStore {
  private raw: ClientStatus | null | undefined;
  private last: SyncStatus = STARTING;

  constructor(
    private readonly client: {
      status: ClientStatus | null;
      onStatus(l: (s: ClientStatus) => void): () => void;
    },
    private readonly bucket: string | undefined,
  ) {}

  readonly subscribe = (listener: () => void): (() => void) => this.client.onStatus(() => listener());

  readonly getSnapshot = (): SyncStatus => {
    const raw = this.client.status;
    if (raw === this.raw) return this.last;
    this.raw = raw;
    const next = summarize(raw, this.bucket);
    if (!same(next, this.last)) this.last = next;
    return this.last;
  };
}
