import { type Checksum, checksumReplace, emptyChecksum } from './checksum';
import type { HostStore } from './host-store';
import type { Entry, SeqOp } from './model';
import type { DeliverMsg } from './protocol';
import { type KeySpan, projectValue, type ReplicationSpec, specCovers, specKey, specSpans } from './spec';

// How a BucketHost serves subscriptions with a replication spec: pages read only the spec's key
// spans (seeking from one span to the next in the store's key order, so a 10% prefix reads
// about 10% of the rows), deliveries carry only matching ops (projected), and each distinct
// spec has a checksum of its own, kept up to date op by op.

/**
 * Entries with `seq > since` and `after < key <= until` that lie in `spans`, in key order, at
 * most `limit`. Each span is read with the store's own range scan: rows between spans are never
 * read. `packed` reads with `pageScan` (values left as MessagePack) where the store has one.
 */
export function scanSpans(
  store: HostStore,
  packed: boolean,
  spans: readonly KeySpan[],
  since: number,
  after: string | undefined,
  until: string | undefined,
  limit: number,
  /** About how many entries the range holds, when known (see `HostStore.pageScan`). */
  span?: number,
): Entry[] {
  const scan = packed ? (store.pageScan ?? store.scan) : store.scan;
  const out: Entry[] = [];
  for (const s of spans) {
    if (out.length >= limit) break;
    // Every key of this span is at or below `after`: served already.
    if (s.hi !== undefined && after !== undefined && s.hi <= after) continue;
    if (until !== undefined && s.lo > until) break;
    let cursor = after;
    if (cursor === undefined || cursor < s.lo) {
      // Scans take an exclusive lower bound; the span's first key is inclusive: read it alone.
      if (s.lo !== '') {
        const first = store.getEntry(s.lo);
        if (first !== undefined && first.seq > since) out.push(first);
        if (out.length >= limit) break;
      }
      cursor = s.lo === '' ? undefined : s.lo;
    }
    const top = s.hi === undefined || (until !== undefined && until < s.hi) ? until : s.hi;
    // `top` is inclusive and a span's `hi` is not: ask for one more row and drop `hi` itself.
    const got = scan.call(store, since, cursor, top, limit - out.length + 1, span);
    for (const e of got) {
      if (s.hi !== undefined && e.key >= s.hi) break;
      out.push(e);
      if (out.length >= limit) break;
    }
  }
  return out;
}

/** `e` as a projected subscription sees it. */
export function projectEntry(fields: readonly string[] | undefined, e: Entry): Entry {
  if (fields === undefined || e.deleted || e.value === undefined) return e;
  return { ...e, value: projectValue(fields, e.value) };
}

interface SpecSum {
  spec: ReplicationSpec;
  spans: readonly KeySpan[];
  sum: Checksum;
  users: number;
  /** Entries (tombstones included) the spec held when its checksum was computed. */
  entries: number;
  /** Every {@link SAMPLE_EVERY}th key of the spec then, in key order (for split points). */
  sample: string[];
}

/** One key in this many is kept to split a spec's download into ranges. */
const SAMPLE_EVERY = 64;

/**
 * Checksums of specs nobody subscribes to any more kept up to date anyway, most recently used
 * first: a replica that reconnects (or a user who opens another tab) resumes without a scan.
 */
const IDLE_SPECS = 8;

/**
 * The checksums of the live entries each distinct spec in use covers, at the host's head.
 * Computed by one scan of the spec's spans when its first subscriber arrives (reading about
 * as many rows as its join downloads), then updated by every committed op; kept for a while
 * after its last subscriber leaves (the {@link IDLE_SPECS} most recent).
 */
export class SpecSums {
  private readonly sums = new Map<string, SpecSum>();

  constructor(private readonly store: HostStore) {}

  /** Takes a reference on `spec`'s checksum (computing it if new) and returns it. */
  acquire(spec: ReplicationSpec): Checksum {
    const key = specKey(spec);
    let s = this.sums.get(key);
    if (s === undefined) {
      const spans = specSpans(spec);
      s = { spec, spans, users: 0, ...this.compute(spans) };
      this.sums.set(key, s);
    }
    s.users++;
    // Most recently used last: Map keeps insertion order.
    this.sums.delete(key);
    this.sums.set(key, s);
    return { ...s.sum };
  }

  /** Drops a reference taken by {@link acquire}. */
  release(spec: ReplicationSpec): void {
    const key = specKey(spec);
    const s = this.sums.get(key);
    if (s === undefined) return;
    if (--s.users > 0) return;
    let idle = 0;
    for (const x of this.sums.values()) if (x.users <= 0) idle++;
    for (const [k, x] of this.sums) {
      if (idle <= IDLE_SPECS) break;
      if (x.users > 0) continue;
      this.sums.delete(k);
      idle--;
    }
  }

  /** The current checksum of `spec` (it must be acquired). */
  sumOf(spec: ReplicationSpec): Checksum {
    const s = this.sums.get(specKey(spec));
    return s === undefined ? this.compute(specSpans(spec)).sum : { ...s.sum };
  }

  /**
   * Up to `parts - 1` keys splitting the spec's entries into ranges of similar size, for a
   * join's parallel downloads, when it held at least `min` entries (from when its checksum was
   * computed: later writes only make the ranges less even).
   */
  splitsOf(spec: ReplicationSpec, parts: number, min: number): string[] {
    const s = this.sums.get(specKey(spec));
    if (s === undefined || s.entries < min || parts < 2) return [];
    const out: string[] = [];
    for (let p = 1; p < parts; p++) {
      const k = s.sample[Math.floor((s.sample.length * p) / parts)];
      if (k !== undefined && k !== out[out.length - 1]) out.push(k);
    }
    return out;
  }

  /** Updates every checksum with committed ops (each carries the key's state before it). */
  apply(ops: readonly SeqOp[]): void {
    if (this.sums.size === 0) return;
    for (const s of this.sums.values()) {
      for (const op of ops) {
        if (!specCovers(s.spec, op.key)) continue;
        checksumReplace(s.sum, op.key, op.prev ?? undefined, { hlc: op.hlc, deleted: op.kind === 'del' });
      }
    }
  }

  private compute(spans: readonly KeySpan[]): { sum: Checksum; entries: number; sample: string[] } {
    const sum = emptyChecksum();
    const sample: string[] = [];
    let entries = 0;
    let after: string | undefined;
    for (;;) {
      // Packed where the store can: the checksum needs keys and versions, not values.
      const page = scanSpans(this.store, true, spans, 0, after, undefined, 10_000);
      for (const e of page) {
        checksumReplace(sum, e.key, undefined, e);
        if (entries++ % SAMPLE_EVERY === 0) sample.push(e.key);
      }
      const last = page[page.length - 1];
      if (page.length < 10_000 || last === undefined) return { sum, entries, sample };
      after = last.key;
    }
  }
}

/**
 * The delivery a subscription with `spec` gets for a committed batch: its matching ops
 * (projected), the seqs the batch covers and the spec's checksum.
 */
export function specDeliver(
  bucket: string,
  spec: ReplicationSpec,
  ops: readonly SeqOp[],
  sum: Checksum,
): DeliverMsg {
  const fields = spec.fields;
  const out: SeqOp[] = [];
  for (const op of ops) {
    if (!specCovers(spec, op.key)) continue;
    out.push(
      fields === undefined || op.kind === 'del'
        ? op
        : { ...op, value: projectValue(fields, op.value ?? null) },
    );
  }
  const first = ops[0]?.seq ?? 0;
  const last = ops[ops.length - 1]?.seq ?? first;
  return { type: 'deliver', bucket, ops: out, sum, span: [first, last] };
}
