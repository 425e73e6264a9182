import type { Env } from './env';
import { MittsyncError } from './errors';
import type { HostMeta, HostStore } from './host-store';
import type { Op } from './model';
import type { SubscriptionPolicy } from './protocol';
import { PurgedKeys } from './purged-keys';
import { collectBound, type ReplicaRecord, type ReplicaView, resumeReset } from './replicas';
import {
  type BucketControl,
  defaultControl,
  type ReplicationDirection,
  type ReplicationPrincipal,
  replicationAllowed,
} from './replication-control';

/** Tombstones deleted per store call while collecting (bounds one transaction's work). */
const TAKE_BATCH = 10_000;

/** A replica's lastSeen is rewritten at most this often while it only sends checkpoints. */
const SEEN_PERSIST_MS = 60_000;

/**
 * The part of a bucket's primary that knows where its replicas are: their records (policy,
 * spec, acknowledged checkpoint, last seen), the distributed tombstone GC they drive, the
 * purged-key record that decides old writes to absent keys, and the admin control of
 * replication in and out. Records, slots and control are cached here and written through to
 * the {@link HostStore}, inside the caller's transaction where there is one.
 */
export class HostReplicas {
  private readonly records = new Map<string, ReplicaRecord>();
  private readonly connected = new Map<string, number>();
  readonly purged: PurgedKeys;
  private controlValue: BucketControl;

  constructor(
    private readonly store: HostStore,
    private readonly env: Env,
    private readonly retainMs: number,
    private readonly capOps: number | undefined,
  ) {
    for (const r of store.listReplicas()) this.records.set(r.replicaId, r);
    this.purged = new PurgedKeys(store.loadPurgedSlots());
    this.controlValue = store.loadControl() ?? defaultControl();
  }

  get control(): BucketControl {
    return this.controlValue;
  }

  setControl(control: BucketControl): void {
    this.store.transaction(() => this.store.saveControl(control));
    this.controlValue = control;
  }

  allows(dir: ReplicationDirection, p: ReplicationPrincipal): boolean {
    return replicationAllowed(this.controlValue, dir, p);
  }

  /** Why a resume of `replicaId` from `since` must reset, tombstone-wise (see {@link resumeReset}). */
  resetReason(replicaId: string, since: number, horizon: number): 'horizon' | 'retention' | undefined {
    return resumeReset(since, horizon, this.records.get(replicaId));
  }

  /**
   * Registers a subscription of `replicaId`: it needs every tombstone above `since` for a
   * resume; a join needs none below the head it starts from.
   */
  subscribed(
    replicaId: string,
    since: number,
    head: number,
    policy: SubscriptionPolicy,
    spec: unknown,
  ): void {
    const rec: ReplicaRecord = {
      replicaId,
      policy,
      acked: since > 0 ? since : head,
      lastSeen: this.env.now(),
      ...(spec === undefined ? {} : { spec }),
    };
    this.recordOnly(() => this.put(rec));
    this.connect(replicaId);
  }

  /** A subscription restored without a frame (a woken Durable Object). */
  connect(replicaId: string): void {
    this.connected.set(replicaId, (this.connected.get(replicaId) ?? 0) + 1);
  }

  /** A subscription of `replicaId` ended: it is last seen now. */
  disconnect(replicaId: string): void {
    const n = (this.connected.get(replicaId) ?? 0) - 1;
    if (n > 0) {
      this.connected.set(replicaId, n);
      return;
    }
    this.connected.delete(replicaId);
    const rec = this.records.get(replicaId);
    if (rec !== undefined) this.recordOnly(() => this.put({ ...rec, lastSeen: this.env.now() }));
  }

  /**
   * Writes a record whose loss is safe: an unregistered replica holds no tombstones back and
   * is reset if it resumes needing a purged one. A storage failure here must not fail a
   * subscription or a socket's teardown.
   */
  private recordOnly(fn: () => void): void {
    try {
      this.store.transaction(fn);
    } catch {
      // See above: without the record the GC only purges less, or resets.
    }
  }

  /**
   * A replica's durable checkpoint (`ckpt`). Returns true when its record changed in a way
   * that may let the GC advance.
   */
  checkpoint(replicaId: string, seq: number, head: number): boolean {
    if (seq > head) {
      throw new MittsyncError('BAD_MESSAGE', `ckpt.seq ${seq} is past the bucket's head ${head}`);
    }
    const rec = this.records.get(replicaId);
    if (rec === undefined) return false; // never subscribed here (or before a reset): nothing to hold
    const now = this.env.now();
    if (seq <= rec.acked && rec.dropped !== true && now - rec.lastSeen < SEEN_PERSIST_MS) return false;
    this.put({ ...rec, acked: Math.max(rec.acked, seq), lastSeen: now, dropped: false });
    return seq > rec.acked;
  }

  /**
   * Purges, inside the open transaction, the tombstones every live replica has passed, and
   * records their keys' HLCs; marks replicas silent past retention as dropped. Updates
   * `meta.gcUpTo`, `meta.horizon` and `meta.purgedHlc`; returns whether `meta` changed.
   */
  collect(meta: HostMeta): boolean {
    const gcUpTo = meta.gcUpTo ?? 0;
    const { upTo, drop } = collectBound({
      head: meta.head,
      gcUpTo,
      replicas: [...this.records.values()],
      connected: new Set(this.connected.keys()),
      now: this.env.now(),
      retainMs: this.retainMs,
      ...(this.capOps === undefined ? {} : { capOps: this.capOps }),
    });
    for (const id of drop) {
      const rec = this.records.get(id);
      if (rec !== undefined) this.put({ ...rec, dropped: true });
    }
    if (upTo <= gcUpTo) return false;
    const taken = this.store.takeTombstones(gcUpTo, upTo, TAKE_BATCH);
    for (const e of taken) {
      const slot = this.purged.record(e.key, e.hlc);
      if (slot !== undefined) this.store.savePurgedSlot(slot, e.hlc);
      if (e.seq > meta.horizon) meta.horizon = e.seq;
      if (e.hlc > meta.purgedHlc) meta.purgedHlc = e.hlc;
    }
    const last = taken[taken.length - 1];
    meta.gcUpTo = taken.length === TAKE_BATCH && last !== undefined ? last.seq : upTo;
    return true;
  }

  /**
   * Why a write to `op.key`, which the relay does not hold, cannot be accepted: it may be
   * older than a purged tombstone of that key.
   */
  checkAbsent(bucket: string, op: Op): MittsyncError | undefined {
    if (!this.purged.undecidable(op.key, op.hlc)) return undefined;
    return new MittsyncError(
      'TOMBSTONE_PURGED',
      `the write to ${op.key} in ${bucket} is older than a delete the relay has since forgotten: it cannot tell whether the key was deleted after it; write it again to keep it`,
      { detail: { bucket, key: op.key } },
    );
  }

  /** Every replica record, with whether it is connected now (admin API). */
  list(): ReplicaView[] {
    return [...this.records.values()].map((r) => ({ ...r, connected: this.connected.has(r.replicaId) }));
  }

  /** Forgets every record (a reset to a new epoch: every replica re-joins and registers again). */
  clear(): void {
    this.store.clearReplicas();
    this.records.clear();
    this.connected.clear();
  }

  private put(rec: ReplicaRecord): void {
    this.store.putReplica(rec);
    this.records.set(rec.replicaId, rec);
  }
}
