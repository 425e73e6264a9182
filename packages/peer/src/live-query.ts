import { keyOrder } from '@mittsync/core';
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
 * Element `j` of a little-endian Uint32 column, read from bytes at any offset: a typed-array
 * view needs 4-byte alignment, and copying to get it allocates, which costs more than this on
 * a busy main thread.
 */
export function u32At(b: Uint8Array, j: number): number {
  const at = j * 4;
  return (
    ((b[at] as number) | ((b[at + 1] as number) << 8) | ((b[at + 2] as number) << 16)) +
    (b[at + 3] as number) * 0x1000000
  );
}

/** One delivery: its slots, tombstone flags, value bytes and value ends. */
interface Taken {
  /** Slot numbers and value ends, as little-endian Uint32 bytes (see {@link u32At}). */
  i: Uint8Array;
  n: number;
  x: Uint8Array;
  v: Uint8Array;
  o: Uint8Array;
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
    return this.view(true, this.take(cols), 'initial');
  }

  apply(cols: EntryColumns, source: 'local' | 'remote'): LiveResult<T> | null {
    const taken = this.take(cols);
    return taken.n === 0 ? null : this.view(false, taken, source);
  }

  private take(cols: EntryColumns): Taken {
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
    return { i, n, x, v, o };
  }

  private view(initial: boolean, taken: Taken, source: Change<T>['source']): LiveResult<T> {
    const { slots, byKey } = this;
    let changes: Change<T>[] | undefined;
    return {
      initial,
      get changes() {
        // Built from the delivery's own batch, so later deliveries don't change it.
        changes ??= Array.from({ length: taken.n }, (_, j) => {
          const key = (slots[u32At(taken.i, j)] as Slot).key;
          if (taken.x[j] === 1) return { key, deleted: true, source };
          const start = j === 0 ? 0 : u32At(taken.o, j - 1);
          const value = unpackr.unpack(taken.v.subarray(start, u32At(taken.o, j))) as T;
          return { key, value, deleted: false, source };
        });
        return changes;
      },
      count: taken.n,
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
