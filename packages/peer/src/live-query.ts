import { keyOrder } from '@mittsync/core';
import { Unpackr } from 'msgpackr';
import type { EntryColumns } from './worker/api';
import { u32At } from './worker/columns';

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
 * One key's state, updated in place by later deliveries: its value as a range of a batch's
 * value bytes, decoded on first read. Slots live as long as their key, so they are allocated
 * once per key: a stream of deliveries then leaves only short-lived garbage behind, which
 * keeps the collector's pauses short on the main thread.
 */
interface Slot {
  readonly key: string;
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

/**
 * The page side of one live query: applies snapshots and change batches in order. The worker
 * sends only what is newer than what this holds, each key with its slot number (see
 * `EntryColumns`), so a delivery costs a few array writes per entry. Values stay encoded
 * until something reads them (`get`, `rows`, `changes`).
 */
export class LiveQueryState<T> {
  private slots: Slot[] = [];
  private byKey = new Map<string, Slot>();
  private live = 0;

  snapshot(cols: EntryColumns): LiveResult<T> {
    this.slots = [];
    this.byKey = new Map();
    this.live = 0;
    return this.view(true, cols, this.take(cols), 'initial');
  }

  apply(cols: EntryColumns, source: 'local' | 'remote'): LiveResult<T> | null {
    const n = this.take(cols);
    return n === 0 ? null : this.view(false, cols, n, source);
  }

  /** Stores a delivery; returns how many entries it holds. */
  private take(cols: EntryColumns): number {
    const { i, k, kl, x, v, o } = cols;
    const n = i.length / 4;
    const slots = this.slots;
    let ka = 0;
    let fresh = 0;
    let start = 0;
    for (let j = 0; j < n; j++) {
      const id = u32At(i, j);
      let s = slots[id];
      if (s === undefined) {
        const len = kl[fresh++] as number;
        const key = k.slice(ka, ka + len);
        ka += len;
        s = { key, deleted: true, raw: NO_BYTES, start: 0, end: 0, value: undefined, decoded: false };
        slots[id] = s;
        this.byKey.set(key, s);
      }
      const deleted = x[j] === 1;
      if (s.deleted && !deleted) this.live++;
      else if (!s.deleted && deleted) this.live--;
      s.deleted = deleted;
      s.raw = deleted ? NO_BYTES : v;
      const end = u32At(o, j);
      s.start = start;
      s.end = end;
      start = end;
      s.value = undefined;
      s.decoded = false;
    }
    return n;
  }

  private view(initial: boolean, cols: EntryColumns, n: number, source: Change<T>['source']): LiveResult<T> {
    const { slots, byKey } = this;
    let changes: Change<T>[] | undefined;
    return {
      initial,
      get changes() {
        // Built from the delivery's own batch, so later deliveries don't change it.
        changes ??= Array.from({ length: n }, (_, j) => {
          const key = (slots[u32At(cols.i, j)] as Slot).key;
          if (cols.x[j] === 1) return { key, deleted: true, source };
          const start = j === 0 ? 0 : u32At(cols.o, j - 1);
          const value = unpackr.unpack(cols.v.subarray(start, u32At(cols.o, j))) as T;
          return { key, value, deleted: false, source };
        });
        return changes;
      },
      count: n,
      size: this.live,
      get: (key) => {
        const s = byKey.get(key);
        return s === undefined || s.deleted ? undefined : (slotValue(s) as T);
      },
      rows: () => {
        const out: Row<T>[] = [];
        for (const s of slots)
          if (s !== undefined && !s.deleted) out.push({ key: s.key, value: slotValue(s) as T });
        return out.sort(keyOrder);
      },
    };
  }
}
