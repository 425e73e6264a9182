import { decodeValue, MittsyncError } from '@mittsync/core';
import { keyOrder } from '@mittsync/core/model';
import type { SlotColumns } from './worker/api';

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

/** Slot flags: the key is deleted (or was never set); its value is decoded in `values`. */
const DEAD = 1;
const DECODED = 2;

/**
 * The keys of one live query by slot number, column by column: a delivery writes a few typed
 * arrays in slot order, not 1,000 objects scattered over the heap. The main thread runs a
 * delivery after tens of milliseconds of other work (the writer, the worker, the relay), with
 * its caches cold, so the memory it touches is most of what it costs. A snapshot starts a new
 * table; results handed out earlier keep theirs.
 */
class SlotTable {
  readonly keys: string[] = [];
  readonly byKey = new Map<string, number>();
  flags = new Uint8Array(64);
  /** Where each slot's value lies in `raw[slot]` (the batch that last set it). */
  start = new Uint32Array(64);
  end = new Uint32Array(64);
  readonly raw: Uint8Array[] = [];
  /** Decoded values (valid where the slot is flagged `DECODED`). */
  readonly values: unknown[] = [];
  live = 0;

  /** A new key in the next slot (the worker numbers new keys in order). */
  add(key: string): void {
    const slot = this.keys.length;
    if (slot === this.flags.length) this.grow();
    this.keys.push(key);
    this.byKey.set(key, slot);
    this.flags[slot] = DEAD;
    this.raw.push(NO_BYTES);
    this.values.push(undefined);
  }

  private grow(): void {
    const size = this.flags.length * 2;
    const flags = new Uint8Array(size);
    flags.set(this.flags);
    const start = new Uint32Array(size);
    start.set(this.start);
    const end = new Uint32Array(size);
    end.set(this.end);
    this.flags = flags;
    this.start = start;
    this.end = end;
  }

  /** The current value of `slot` (decoded on first read), or undefined if deleted. */
  value(slot: number): unknown {
    const f = this.flags[slot] as number;
    if (f & DEAD) return undefined;
    if (f & DECODED) return this.values[slot];
    const raw = this.raw[slot] as Uint8Array;
    const v = decodeValue(raw.subarray(this.start[slot], this.end[slot]));
    this.values[slot] = v;
    this.flags[slot] = f | DECODED;
    return v;
  }
}

const NO_BYTES = new Uint8Array(0);

/**
 * The page side of one live query: applies snapshots and change batches in order. The worker
 * sends only what is newer than what this holds, each key with its slot number (see
 * `SlotColumns`), so a delivery costs a few array writes per entry. Values stay encoded
 * until something reads them (`get`, `rows`, `changes`).
 */
export class LiveQueryState<T> {
  private table = new SlotTable();

  snapshot(cols: SlotColumns): LiveResult<T> {
    this.table = new SlotTable();
    return this.view(true, cols, this.take(cols), 'initial');
  }

  apply(cols: SlotColumns, source: 'local' | 'remote'): LiveResult<T> | null {
    const n = this.take(cols);
    return n === 0 ? null : this.view(false, cols, n, source);
  }

  /** Stores a delivery; returns how many entries it holds. */
  private take(cols: SlotColumns): number {
    const { i, k, kl, x, v, o } = cols;
    const n = i.length;
    const t = this.table;
    let ka = 0;
    for (let j = 0; j < kl.length; j++) {
      const len = kl[j] as number;
      t.add(k.slice(ka, ka + len));
      ka += len;
    }
    const count = t.keys.length;
    for (let j = 0; j < n; j++)
      if ((i[j] as number) >= count)
        throw new MittsyncError('BAD_FRAME', `live-query delivery names slot ${i[j]}, never keyed`);
    const { flags, start, end, raw, values } = t;
    let live = t.live;
    let at = 0;
    for (let j = 0; j < n; j++) {
      const id = i[j] as number;
      const dead = x[j] === 1;
      const was = flags[id] as number;
      // A value decoded from older bytes is let go (the new one decodes on first read).
      if (was & DECODED) values[id] = undefined;
      if (dead) {
        if ((was & DEAD) === 0) live--;
        flags[id] = DEAD;
        raw[id] = NO_BYTES;
      } else {
        if (was & DEAD) live++;
        flags[id] = 0;
        raw[id] = v;
      }
      const e = o[j] as number;
      start[id] = at;
      end[id] = e;
      at = e;
    }
    t.live = live;
    return n;
  }

  private view(initial: boolean, cols: SlotColumns, n: number, source: Change<T>['source']): LiveResult<T> {
    return new Delivery<T>(initial, cols, n, source, this.table);
  }
}

/**
 * One delivery's {@link LiveResult}: a class rather than an object literal with getters and
 * arrow functions, so making one per delivery is a plain allocation on the main thread.
 */
class Delivery<T> implements LiveResult<T> {
  private built: Change<T>[] | undefined;

  constructor(
    readonly initial: boolean,
    private readonly cols: SlotColumns,
    readonly count: number,
    private readonly source: Change<T>['source'],
    private readonly table: SlotTable,
  ) {
    this.size = table.live;
  }

  /** Keys in the result when this was delivered. */
  readonly size: number;

  get changes(): Change<T>[] {
    // Built from the delivery's own batch, so later deliveries don't change it.
    if (this.built === undefined) {
      const { i, x, v, o } = this.cols;
      const { table, source } = this;
      this.built = Array.from({ length: this.count }, (_, j) => {
        const key = table.keys[i[j] as number] as string;
        if (x[j] === 1) return { key, deleted: true, source };
        const start = j === 0 ? 0 : (o[j - 1] as number);
        const value = decodeValue(v.subarray(start, o[j] as number)) as T;
        return { key, value, deleted: false, source };
      });
    }
    return this.built;
  }

  get(key: string): T | undefined {
    const slot = this.table.byKey.get(key);
    return slot === undefined ? undefined : (this.table.value(slot) as T | undefined);
  }

  rows(): Row<T>[] {
    const { table } = this;
    const out: Row<T>[] = [];
    for (let slot = 0; slot < table.keys.length; slot++)
      if (((table.flags[slot] as number) & DEAD) === 0)
        out.push({ key: table.keys[slot] as string, value: table.value(slot) as T });
    return out.sort(keyOrder);
  }
}
