import { type ChangeSource, type Entry, encodeFrame } from '@mittsync/core';
import { Packr } from 'msgpackr';
import type { ClientStatus, EntryColumns, EntryTuple, HostEvent, Query } from './api';

/** Sends one encoded batch of events to a tab (transferring the bytes). */
export type EventSink = (bytes: Uint8Array) => void;

/** Reads a query's current result from the replica. */
export type QueryReader = (bucket: string, query: Query) => Promise<Entry[]>;

interface Watcher {
  tabId: string;
  id: number;
  bucket: string;
  query: Query;
  match: (key: string) => boolean;
  /** Changes seen while the snapshot is being read (subscribe first, then read). */
  held: { entries: Entry[]; source: ChangeSource }[] | null;
}

/** A queued event, entries still as objects (encoded at flush). */
type Queued =
  | { t: 'snap'; w: number; e: readonly Entry[] }
  | { t: 'chg'; w: number; e: readonly Entry[]; s: ChangeSource }
  | { t: 'status'; s: ClientStatus };

interface Tab {
  sink: EventSink;
  queue: Queued[];
}

const valuePackr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

/** Encodes entries by column (see {@link EntryColumns}). */
export function toColumns(entries: readonly Entry[]): EntryColumns {
  const n = entries.length;
  const k: string[] = new Array(n);
  const kl: number[] = new Array(n);
  const h: string[] = new Array(n);
  const hl: number[] = new Array(n);
  const x: number[] = new Array(n);
  const o: number[] = new Array(n);
  const parts: Uint8Array[] = [];
  let size = 0;
  for (let i = 0; i < n; i++) {
    const e = entries[i] as Entry;
    k[i] = e.key;
    kl[i] = e.key.length;
    h[i] = e.hlc;
    hl[i] = e.hlc.length;
    x[i] = e.deleted ? 1 : 0;
    if (!e.deleted) {
      // pack() returns a view into a buffer msgpackr reuses: copy it out now.
      const bytes = valuePackr.pack(e.value ?? null).slice();
      parts.push(bytes);
      size += bytes.length;
    }
    o[i] = size;
  }
  const v = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    v.set(p, at);
    at += p.length;
  }
  return { k: k.join(''), kl, h: h.join(''), hl, x, v, o };
}

/** An entry on the worker-page link (`get` and `scan` results). */
export function toTuple(e: Entry): EntryTuple {
  return e.deleted ? [e.key, e.hlc, 1] : [e.key, e.hlc, 0, e.value ?? null];
}

/** The key predicate of a query (limits apply to snapshots only). */
export function matcher(q: Query): (key: string) => boolean {
  if ('key' in q) return (k) => k === q.key;
  if ('keys' in q) {
    const set = new Set(q.keys);
    return (k) => set.has(k);
  }
  if ('prefix' in q) return (k) => k.startsWith(q.prefix);
  const { start, end } = q;
  return (k) => (start === undefined || k >= start) && (end === undefined || k < end);
}

/**
 * Live queries of every attached tab. A watcher is registered before its snapshot is read and
 * holds the changes that arrive meanwhile, which follow the snapshot on the same ordered
 * channel: no change can fall between a live query's initial result and its stream (the mitt
 * again, between worker and page). A change both in the snapshot and held is sent twice;
 * the page ignores versions it already has. Events of one tab are batched per microtask and
 * sent as one transferred msgpack buffer.
 */
export class WatchHub {
  private readonly tabs = new Map<string, Tab>();
  private readonly watchers = new Map<string, Watcher>();
  private scheduled = false;

  constructor(private readonly read: QueryReader) {}

  get size(): number {
    return this.watchers.size;
  }

  addTab(tabId: string, sink: EventSink): void {
    this.tabs.set(tabId, { sink, queue: [] });
  }

  removeTab(tabId: string): void {
    this.tabs.delete(tabId);
    for (const [id, w] of this.watchers) if (w.tabId === tabId) this.watchers.delete(id);
  }

  async watch(tabId: string, id: number, bucket: string, query: Query): Promise<void> {
    const w: Watcher = { tabId, id, bucket, query, match: matcher(query), held: null };
    this.watchers.set(`${tabId}/${id}`, w);
    await this.snapshot(w);
  }

  unwatch(tabId: string, id: number): void {
    this.watchers.delete(`${tabId}/${id}`);
  }

  /** Sends fresh snapshots to the watchers of `bucket` (all buckets when omitted). */
  async resnap(bucket?: string): Promise<void> {
    const ws = [...this.watchers.values()].filter((w) => bucket === undefined || w.bucket === bucket);
    await Promise.all(ws.map((w) => this.snapshot(w)));
  }

  private async snapshot(w: Watcher): Promise<void> {
    w.held = [];
    let entries: Entry[];
    try {
      entries = await this.read(w.bucket, w.query);
    } catch (e) {
      w.held = null;
      throw e;
    }
    const held = w.held;
    w.held = null;
    const key = `${w.tabId}/${w.id}`;
    if (this.watchers.get(key) !== w) return; // unwatched meanwhile
    this.push(w.tabId, { t: 'snap', w: w.id, e: entries.filter((e) => !e.deleted) });
    for (const h of held) this.push(w.tabId, { t: 'chg', w: w.id, e: h.entries, s: h.source });
  }

  /** Routes a committed change to every matching watcher. */
  onChange(bucket: string, entries: readonly Entry[], source: ChangeSource): void {
    for (const w of this.watchers.values()) {
      if (w.bucket !== bucket) continue;
      const hits: Entry[] = [];
      for (const e of entries) if (w.match(e.key)) hits.push(e);
      if (hits.length === 0) continue;
      if (w.held !== null) w.held.push({ entries: hits, source });
      else this.push(w.tabId, { t: 'chg', w: w.id, e: hits, s: source });
    }
  }

  /** Queues a status event for every tab (only the newest of a batch is kept). */
  status(s: (tabId: string) => ClientStatus): void {
    for (const tabId of this.tabs.keys()) this.push(tabId, { t: 'status', s: s(tabId) });
  }

  private push(tabId: string, ev: Queued): void {
    const tab = this.tabs.get(tabId);
    if (tab === undefined) return;
    if (ev.t === 'status') {
      const i = tab.queue.findIndex((x) => x.t === 'status');
      if (i >= 0) tab.queue.splice(i, 1);
    }
    tab.queue.push(ev);
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  private flush(): void {
    this.scheduled = false;
    for (const tab of this.tabs.values()) {
      if (tab.queue.length === 0) continue;
      const events: HostEvent[] = tab.queue.map((ev) =>
        ev.t === 'status'
          ? ev
          : ev.t === 'snap'
            ? { t: 'snap', w: ev.w, b: toColumns(ev.e) }
            : { t: 'chg', w: ev.w, b: toColumns(ev.e), s: ev.s },
      );
      tab.queue = [];
      // A copy of exactly the encoded bytes: its buffer is ours to transfer.
      tab.sink(encodeFrame(events).slice());
    }
  }
}
