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

/** One key's state: its version and its value, decoded from `raw[start..end]` on first use. */
interface Slot {
  hlc: string;
  deleted: boolean;
  raw: Uint8Array | null;
  start: number;
  end: number;
  value: unknown;
}

function decoded(slot: Slot): unknown {
  if (slot.raw !== null) {
    slot.value = unpackr.unpack(slot.raw.subarray(slot.start, slot.end));
    slot.raw = null;
  }
  return slot.value;
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
    return this.view(true, this.take(cols, 'initial'));
  }

  apply(cols: EntryColumns, source: 'local' | 'remote'): LiveResult<T> | null {
    const changed = this.take(cols, source);
    return changed.length === 0 ? null : this.view(false, changed);
  }

  /** Applies the newer entries of a batch; returns the slots that changed, with their keys. */
  private take(cols: EntryColumns, source: Change<T>['source']): [string, Slot, Change<T>['source']][] {
    const { k, kl, h, hl, x, v, o } = cols;
    const changed: [string, Slot, Change<T>['source']][] = [];
    let ka = 0;
    let ha = 0;
    for (let i = 0; i < kl.length; i++) {
      const key = k.slice(ka, ka + (kl[i] as number));
      const hlc = h.slice(ha, ha + (hl[i] as number));
      ka += kl[i] as number;
      ha += hl[i] as number;
      const cur = this.slots.get(key);
      if (cur !== undefined && cur.hlc >= hlc) continue;
      const deleted = x[i] === 1;
      if (cur === undefined || cur.deleted) {
        if (!deleted) this.live++;
      } else if (deleted) this.live--;
      const slot: Slot = {
        hlc,
        deleted,
        raw: deleted ? null : v,
        start: i === 0 ? 0 : (o[i - 1] as number),
        end: o[i] as number,
        value: undefined,
      };
      this.slots.set(key, slot);
      changed.push([key, slot, source]);
    }
    return changed;
  }

  private view(initial: boolean, changed: [string, Slot, Change<T>['source']][]): LiveResult<T> {
    const slots = this.slots;
    let changes: Change<T>[] | undefined;
    return {
      initial,
      get changes() {
        changes ??= changed.map(([key, slot, source]) =>
          slot.deleted
            ? { key, deleted: true, source }
            : { key, value: decoded(slot) as T, deleted: false, source },
        );
        return changes;
      },
      count: changed.length,
      size: this.live,
      get: (key) => {
        const s = slots.get(key);
        return s === undefined || s.deleted ? undefined : (decoded(s) as T);
      },
      rows: () => {
        const out: Row<T>[] = [];
        for (const [key, s] of slots) if (!s.deleted) out.push({ key, value: decoded(s) as T });
        return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      },
    };
  }
}
