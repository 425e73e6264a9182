import { Unpackr } from 'msgpackr';
import type { EntryColumns } from './worker/api';

/** One key and its value in a result. */
export interface Row<T> {
  key: string;
  value: T;
}

/** What changed in one delivery of a live query. */
export interface Change<T> {
  key: string;
  /** The new value (absent when deleted). */
  value?: T;
  deleted: boolean;
  /** `initial` for the rows of a snapshot, else who made the change. */
  source: 'initial' | 'local' | 'remote';
}

/**
 * What a live query's callback receives: the changes of this delivery and a view of the whole
 * current result. The first delivery is a snapshot (`initial: true`); a snapshot comes again
 * after a worker hand-over or a re-join, and then replaces everything seen before.
 */
export interface LiveResult<T> {
  readonly initial: boolean;
  /** The changes of this delivery (values decoded on first access). */
  readonly changes: readonly Change<T>[];
  /** How many keys this delivery changed (without materializing `changes`). */
  readonly count: number;
  /** Keys currently in the result. */
  readonly size: number;
  get(key: string): T | undefined;
  /** The current result in key order (built on each call). */
  rows(): Row<T>[];
}

const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

/**
 * One key's state, updated in place by later deliveries: its version (a range of a batch's
 * version string, compared without slicing it out) and its value (a range of a batch's value
 * bytes, decoded on first read). Slots live as long as their key, so they are allocated once
 * per key: a stream of deliveries then leaves only short-lived garbage behind, which keeps
 * the collector's pauses short on the main thread.
 */
interface Slot {
  h: string;
  hAt: number;
  hLen: number;
  deleted: boolean;
  raw: Uint8Array;
  start: number;
  end: number;
  value: unknown;
  decoded: boolean;
}

const NO_BYTES = new Uint8Array(0);

function slotValue(slot: Slot): unknown {
  if (!slot.decoded) {
    slot.value = unpackr.unpack(slot.raw.subarray(slot.start, slot.end));
    slot.decoded = true;
  }
  return slot.value;
}

/** Compares `a[aAt..aAt+aLen)` with `b[bAt..bAt+bLen)` as strings compare, without slicing. */
function compareRanges(a: string, aAt: number, aLen: number, b: string, bAt: number, bLen: number): number {
  const n = Math.min(aLen, bLen);
  for (let i = 0; i < n; i++) {
    const d = a.charCodeAt(aAt + i) - b.charCodeAt(bAt + i);
    if (d !== 0) return d;
  }
  return aLen - bLen;
}

/** What one delivery changed: indexes into its batch, with where each key starts. */
interface Taken {
  cols: EntryColumns;
  /** Indexes (into the batch) of the entries that changed something. */
  idx: Uint32Array;
  /** Where each changed entry's key starts in `cols.k`. */
  keyAt: Uint32Array;
  n: number;
}

/**
 * The page side of one live query: applies snapshots and change batches in order, skipping
 * versions it already has (a change can arrive both in a snapshot and right after it).
 * Values stay encoded until something reads them (`get`, `rows`, `changes`).
 */
export class LiveQueryState<T> {
  private slots = new Map<string, Slot>();
  private live = 0;

  snapshot(cols: EntryColumns): LiveResult<T> {
    this.slots = new Map();
    this.live = 0;
    return this.view(true, this.take(cols), 'initial');
  }

  apply(cols: EntryColumns, source: 'local' | 'remote'): LiveResult<T> | null {
    const taken = this.take(cols);
    return taken.n === 0 ? null : this.view(false, taken, source);
  }

  /** Applies the newer entries of a batch; returns which of them changed something. */
  private take(cols: EntryColumns): Taken {
    const { k, kl, h, hl, x, v, o } = cols;
    const count = kl.length;
    const idx = new Uint32Array(count);
    const keyAt = new Uint32Array(count);
    let n = 0;
    let ka = 0;
    let ha = 0;
    for (let i = 0; i < count; i++) {
      const kLen = kl[i] as number;
      const hLen = hl[i] as number;
      const key = k.slice(ka, ka + kLen);
      const cur = this.slots.get(key);
      if (cur === undefined || compareRanges(cur.h, cur.hAt, cur.hLen, h, ha, hLen) < 0) {
        const deleted = x[i] === 1;
        const start = i === 0 ? 0 : (o[i - 1] as number);
        const end = o[i] as number;
        if (cur === undefined) {
          if (!deleted) this.live++;
          this.slots.set(key, {
            h,
            hAt: ha,
            hLen,
            deleted,
            raw: deleted ? NO_BYTES : v,
            start,
            end,
            value: undefined,
            decoded: false,
          });
        } else {
          if (cur.deleted && !deleted) this.live++;
          else if (!cur.deleted && deleted) this.live--;
          cur.h = h;
          cur.hAt = ha;
          cur.hLen = hLen;
          cur.deleted = deleted;
          cur.raw = deleted ? NO_BYTES : v;
          cur.start = start;
          cur.end = end;
          cur.value = undefined;
          cur.decoded = false;
        }
        idx[n] = i;
        keyAt[n] = ka;
        n++;
      }
      ka += kLen;
      ha += hLen;
    }
    return { cols, idx, keyAt, n };
  }

  private view(initial: boolean, taken: Taken, source: Change<T>['source']): LiveResult<T> {
    const slots = this.slots;
    let changes: Change<T>[] | undefined;
    return {
      initial,
      get changes() {
        // Built from the delivery's own batch, so later deliveries don't change it.
        changes ??= Array.from({ length: taken.n }, (_, j) => {
          const { k, kl, x, v, o } = taken.cols;
          const i = taken.idx[j] as number;
          const at = taken.keyAt[j] as number;
          const key = k.slice(at, at + (kl[i] as number));
          if (x[i] === 1) return { key, deleted: true, source };
          const value = unpackr.unpack(v.subarray(i === 0 ? 0 : (o[i - 1] as number), o[i] as number)) as T;
          return { key, value, deleted: false, source };
        });
        return changes;
      },
      count: taken.n,
      size: this.live,
      get: (key) => {
        const s = slots.get(key);
        return s === undefined || s.deleted ? undefined : (slotValue(s) as T);
      },
      rows: () => {
        const out: Row<T>[] = [];
        for (const [key, s] of slots) if (!s.deleted) out.push({ key, value: slotValue(s) as T });
        return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      },
    };
  }
}
