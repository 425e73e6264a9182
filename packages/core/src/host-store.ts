import type { Checksum } from './checksum';
import type { ColumnParts } from './columns';
import type { Hlc } from './hlc';
import type { Entry } from './model';
import type { packedEntry } from './packed';
import type { RejectedOp } from './protocol';
import type { ReplicaRecord } from './replicas';
import type { BucketControl } from './replication-control';
import { upperBound } from './search';

/** Durable state of one bucket on the relay, besides its entries. */
export interface HostMeta {
  /** Identity of this bucket's log; a new one means replicas must re-join. */
  epoch: string;
  /** Highest seq assigned. */
  head: number;
  /** Tombstones with seq <= horizon have been purged; resumes from before it must reset. */
  horizon: number;
  /** Greatest HLC among purged tombstones ('' if none): older writes to absent keys lose to it. */
  purgedHlc: Hlc;
  /** Checksum of the live entries at `head`. */
  sum: Checksum;
  /**
   * Every tombstone with a seq at or below this has been purged (the distributed GC's
   * progress; absent or 0 before the first collection).
   */
  gcUpTo?: number;
}

/**
 * The synchronous storage a {@link BucketHost} runs on. The relay implements it over SQLite
 * (better-sqlite3 on Node, `ctx.storage.sql` in a Durable Object); {@link MemoryHostStore}
 * serves tests and the simulator. Everything inside `transaction` commits or rolls back as one.
 */
export interface HostStore {
  loadMeta(): HostMeta | undefined;
  saveMeta(meta: HostMeta): void;
  transaction<T>(fn: () => T): T;
  getEntry(key: string): Entry | undefined;
  putEntry(entry: Entry): void;
  /** Reception counter: highest originSeq accepted from `origin` (0 if none). */
  getReceived(origin: string): number;
  setReceived(origin: string, originSeq: number): void;
  /**
   * The latest of `origin`'s ops the bucket refused (at most `MAX_REMEMBERED_REFUSALS`),
   * oldest first, as their acks said; kept with the reception counter, so a relay restarted
   * since still tells a replica whose ack was lost (`subscribed.rejected`).
   */
  getRefused(origin: string): RejectedOp[];
  setRefused(origin: string, refused: readonly RejectedOp[]): void;
  /** Entries with `seq > since` and `after < key <= until`, in key order, at most `limit`. */
  scan(since: number, after: string | undefined, until: string | undefined, limit: number): Entry[];
  /**
   * The same as `scan`, for page frames only: a store that keeps values as MessagePack may
   * return {@link packedEntry}s, whose bytes go into the frame without being decoded.
   */
  pageScan?(
    since: number,
    after: string | undefined,
    until: string | undefined,
    limit: number,
    /**
     * About how many entries lie between `after` and `until`, when the caller knows (the page
     * cache does): a store can then choose between walking that range and walking what
     * changed since `since`, whichever is fewer.
     */
    span?: number,
  ): Entry[];
  /**
   * What `pageScan` reads, by column and in bulk, for a page frame sent as columns: no object
   * per entry. `n` entries, at most `limit`. Undefined when the store cannot give this range
   * that way (a key past U+FFFF, which has no UTF-8 sort key, or a value of more than
   * `maxValueBytes`); the caller then reads it with `pageScan`.
   */
  pageColumns?(
    since: number,
    after: string | undefined,
    until: string | undefined,
    limit: number,
    maxValueBytes: number,
  ): (ColumnParts & { n: number }) | undefined;
  /** Up to `parts - 1` keys splitting the bucket into ranges of similar size. */
  splitKeys(parts: number): string[];
  /** Number of entries (tombstones included). */
  count(): number;
  /**
   * Deletes tombstones with `seq <= upTo` and `hlc < olderThan`; returns how many and their
   * greatest HLC ('' if none).
   */
  purgeTombstones(upTo: number, olderThan: Hlc): { purged: number; maxHlc: Hlc };
  /**
   * Deletes up to `limit` tombstones with `after < seq <= upTo`, lowest seqs first, and returns
   * them (the distributed GC records their keys before forgetting them).
   */
  takeTombstones(after: number, upTo: number, limit: number): Entry[];
  /** Number of tombstones held. */
  countTombstones(): number;
  /** Every replica the bucket has served (see {@link ReplicaRecord}). */
  listReplicas(): ReplicaRecord[];
  /** Inserts or replaces a replica's record. */
  putReplica(record: ReplicaRecord): void;
  /** Forgets every replica record (a bucket reset to a new epoch). */
  clearReplicas(): void;
  /** The purged-key record: per key slot, the greatest purged tombstone HLC. */
  loadPurgedSlots(): [slot: number, hlc: Hlc][];
  savePurgedSlot(slot: number, hlc: Hlc): void;
  /** The bucket's admin control, if one was ever set. */
  loadControl(): BucketControl | undefined;
  saveControl(control: BucketControl): void;
}

/** An in-memory {@link HostStore}; transactions roll back by undo log. */
export class MemoryHostStore implements HostStore {
  private meta: HostMeta | undefined;
  private readonly entries = new Map<string, Entry>();
  private readonly received = new Map<string, number>();
  private readonly refused = new Map<string, readonly RejectedOp[]>();
  private replicas = new Map<string, ReplicaRecord>();
  private readonly slots = new Map<number, Hlc>();
  private control: BucketControl | undefined;
  private sorted: string[] | null = null;
  private undo: (() => void)[] | null = null;

  loadMeta(): HostMeta | undefined {
    return this.meta === undefined ? undefined : { ...this.meta, sum: { ...this.meta.sum } };
  }

  saveMeta(meta: HostMeta): void {
    const prev = this.meta;
    this.undo?.push(() => {
      this.meta = prev;
    });
    this.meta = { ...meta, sum: { ...meta.sum } };
  }

  transaction<T>(fn: () => T): T {
    const outer = this.undo;
    // Nested, like a savepoint: a failure undoes only what ran since this call began.
    const log = outer ?? [];
    const mark = log.length;
    this.undo = log;
    try {
      const out = fn();
      this.undo = outer;
      return out;
    } catch (e) {
      for (let i = log.length - 1; i >= mark; i--) log[i]?.();
      log.length = mark;
      this.undo = outer;
      // Restored keys may be missing from a key order computed inside the transaction.
      this.sorted = null;
      throw e;
    }
  }

  getEntry(key: string): Entry | undefined {
    return this.entries.get(key);
  }

  putEntry(entry: Entry): void {
    const prev = this.entries.get(entry.key);
    if (prev === undefined) this.sorted = null;
    this.undo?.push(() => {
      if (prev === undefined) {
        this.entries.delete(entry.key);
        this.sorted = null;
      } else this.entries.set(entry.key, prev);
    });
    this.entries.set(entry.key, entry);
  }

  getReceived(origin: string): number {
    return this.received.get(origin) ?? 0;
  }

  setReceived(origin: string, originSeq: number): void {
    const prev = this.received.get(origin);
    this.undo?.push(() => {
      if (prev === undefined) this.received.delete(origin);
      else this.received.set(origin, prev);
    });
    this.received.set(origin, originSeq);
  }

  getRefused(origin: string): RejectedOp[] {
    return (this.refused.get(origin) ?? []).map((r) => ({ ...r }));
  }

  setRefused(origin: string, refused: readonly RejectedOp[]): void {
    const prev = this.refused.get(origin);
    this.undo?.push(() => {
      if (prev === undefined) this.refused.delete(origin);
      else this.refused.set(origin, prev);
    });
    this.refused.set(
      origin,
      refused.map((r) => ({ ...r })),
    );
  }

  private sortedKeys(): string[] {
    if (this.sorted === null) this.sorted = [...this.entries.keys()].sort();
    return this.sorted;
  }

  scan(since: number, after: string | undefined, until: string | undefined, limit: number): Entry[] {
    const keys = this.sortedKeys();
    let i = after === undefined ? 0 : upperBound(keys, after);
    const out: Entry[] = [];
    for (; i < keys.length && out.length < limit; i++) {
      const k = keys[i] as string;
      if (until !== undefined && k > until) break;
      const e = this.entries.get(k);
      if (e !== undefined && e.seq > since) out.push(e);
    }
    return out;
  }

  splitKeys(parts: number): string[] {
    const keys = this.sortedKeys();
    const out: string[] = [];
    for (let p = 1; p < parts; p++) {
      const k = keys[Math.floor((keys.length * p) / parts) - 1];
      if (k !== undefined && k !== out[out.length - 1]) out.push(k);
    }
    return out;
  }

  count(): number {
    return this.entries.size;
  }

  purgeTombstones(upTo: number, olderThan: Hlc): { purged: number; maxHlc: Hlc } {
    let purged = 0;
    let maxHlc = '';
    for (const [k, e] of this.entries) {
      if (e.deleted && e.seq <= upTo && e.hlc < olderThan) {
        this.entries.delete(k);
        this.undo?.push(() => this.entries.set(k, e));
        purged++;
        if (e.hlc > maxHlc) maxHlc = e.hlc;
      }
    }
    if (purged > 0) this.sorted = null;
    return { purged, maxHlc };
  }

  takeTombstones(after: number, upTo: number, limit: number): Entry[] {
    const found: Entry[] = [];
    for (const e of this.entries.values()) if (e.deleted && e.seq > after && e.seq <= upTo) found.push(e);
    found.sort((a, b) => a.seq - b.seq);
    const out = found.slice(0, limit);
    for (const e of out) {
      this.entries.delete(e.key);
      this.undo?.push(() => this.entries.set(e.key, e));
    }
    if (out.length > 0) this.sorted = null;
    return out;
  }

  countTombstones(): number {
    let n = 0;
    for (const e of this.entries.values()) if (e.deleted) n++;
    return n;
  }

  listReplicas(): ReplicaRecord[] {
    return [...this.replicas.values()].map((r) => ({ ...r }));
  }

  putReplica(record: ReplicaRecord): void {
    const prev = this.replicas.get(record.replicaId);
    this.undo?.push(() => {
      if (prev === undefined) this.replicas.delete(record.replicaId);
      else this.replicas.set(record.replicaId, prev);
    });
    this.replicas.set(record.replicaId, { ...record });
  }

  clearReplicas(): void {
    const prev = this.replicas;
    this.undo?.push(() => {
      this.replicas = prev;
    });
    this.replicas = new Map();
  }

  loadPurgedSlots(): [number, Hlc][] {
    return [...this.slots];
  }

  savePurgedSlot(slot: number, hlc: Hlc): void {
    const prev = this.slots.get(slot);
    this.undo?.push(() => {
      if (prev === undefined) this.slots.delete(slot);
      else this.slots.set(slot, prev);
    });
    this.slots.set(slot, hlc);
  }

  loadControl(): BucketControl | undefined {
    return this.control === undefined
      ? undefined
      : (JSON.parse(JSON.stringify(this.control)) as BucketControl);
  }

  saveControl(control: BucketControl): void {
    const prev = this.control;
    this.undo?.push(() => {
      this.control = prev;
    });
    this.control = JSON.parse(JSON.stringify(control)) as BucketControl;
  }

  /** Every entry, for tests and the simulator. */
  allEntries(): Entry[] {
    return [...this.entries.values()];
  }
}
