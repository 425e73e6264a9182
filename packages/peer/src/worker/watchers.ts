import type { ChangeSource, Entry } from '@mittsync/core';
import { valueBytesOf } from '@mittsync/core/columns';
import { wins } from '@mittsync/core/model';
import type { ClientStatus, EntryTuple, HostEvent, Query, SlotColumns } from './api';
import { encodeEvents } from './event-frame';

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
  /** What the page holds (events go through it in the order they are queued). */
  mirror: LiveMirror;
}

interface Tab {
  sink: EventSink;
  queue: HostEvent[];
  /** The last status queued for this tab: its JSON, its {@link statusShape}, and when. */
  sent: { json: string; shape: string; at: number } | null;
  /** A status held back by {@link STATUS_EVERY_MS}, and the timer that will send it. */
  held: ClientStatus | null;
  timer: ReturnType<typeof setTimeout> | null;
}

/**
 * How often a tab hears of a status change that only moves counters (pending writes,
 * checkpoint, catch-up progress, mitt, checks passed). Every write moves them two or three
 * times (committed, pushed, acknowledged), and each status is a task on every tab's main
 * thread. Changes of connection, phase, readiness or errors go out at once.
 */
export const STATUS_EVERY_MS = 50;

/** What of a status must reach tabs at once: everything but the counters. */
function statusShape(s: ClientStatus): string {
  const buckets = s.buckets.map((b) => [b.bucket, b.phase, b.ready, b.epoch, b.lastError?.code ?? null]);
  return JSON.stringify([s.replicaId, s.connection, s.persistent, s.hosting, s.error?.code ?? null, buckets]);
}

/**
 * The worker's copy of what one live query's page holds: each key's slot number and version.
 * Deliveries go through it, so the page gets only what is newer than what it has, already
 * numbered (see {@link SlotColumns}).
 */
export class LiveMirror {
  private slots = new Map<string, { id: number; hlc: string }>();

  /** A snapshot: every entry, numbered from 0. */
  snapshot(entries: readonly Entry[]): SlotColumns {
    this.slots = new Map();
    return this.columns(entries, true) as SlotColumns;
  }

  /** The entries newer than what the page has, or null when there are none. */
  change(entries: readonly Entry[]): SlotColumns | null {
    return this.columns(entries, false);
  }

  private columns(entries: readonly Entry[], all: boolean): SlotColumns | null {
    const ids: number[] = [];
    const taken: Entry[] = [];
    const k: string[] = [];
    const kl: number[] = [];
    for (const e of entries) {
      const cur = this.slots.get(e.key);
      if (cur === undefined) {
        const id = this.slots.size;
        this.slots.set(e.key, { id, hlc: e.hlc });
        ids.push(id);
        k.push(e.key);
        kl.push(e.key.length);
      } else if (wins(e.hlc, cur.hlc)) {
        // Core's LWW rule: the page keeps exactly what the replica's merge keeps.
        cur.hlc = e.hlc;
        ids.push(cur.id);
      } else continue;
      taken.push(e);
    }
    if (taken.length === 0 && !all) return null;
    const n = taken.length;
    const x = new Uint8Array(n);
    const o = new Uint32Array(n);
    const parts: Uint8Array[] = [];
    let size = 0;
    for (let j = 0; j < n; j++) {
      const e = taken[j] as Entry;
      if (e.deleted) x[j] = 1;
      else {
        // A downloaded entry's own bytes, not its value decoded and encoded again.
        const bytes = valueBytesOf(e);
        parts.push(bytes);
        size += bytes.length;
      }
      o[j] = size;
    }
    const v = new Uint8Array(size);
    let at = 0;
    for (const p of parts) {
      v.set(p, at);
      at += p.length;
    }
    return { i: Uint32Array.from(ids), k: k.join(''), kl: Uint32Array.from(kl), x, v, o };
  }
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
 * again, between worker and page). Each watcher's {@link LiveMirror} drops what the page
 * already has (a held change the snapshot already saw, an older version arriving late).
 * Events of one tab are batched per microtask and sent as one transferred buffer.
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
    this.tabs.set(tabId, { sink, queue: [], sent: null, held: null, timer: null });
  }

  removeTab(tabId: string): void {
    const tab = this.tabs.get(tabId);
    if (tab?.timer != null) clearTimeout(tab.timer);
    this.tabs.delete(tabId);
    for (const [id, w] of this.watchers) if (w.tabId === tabId) this.watchers.delete(id);
  }

  async watch(tabId: string, id: number, bucket: string, query: Query): Promise<void> {
    const w: Watcher = {
      tabId,
      id,
      bucket,
      query,
      match: matcher(query),
      held: null,
      mirror: new LiveMirror(),
    };
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
    this.push(w.tabId, { t: 'snap', w: w.id, b: w.mirror.snapshot(entries.filter((e) => !e.deleted)) });
    for (const h of held) this.pushChange(w, h.entries, h.source);
  }

  private pushChange(w: Watcher, entries: readonly Entry[], source: ChangeSource): void {
    if (!this.tabs.has(w.tabId)) return;
    const b = w.mirror.change(entries);
    if (b !== null) this.push(w.tabId, { t: 'chg', w: w.id, b, s: source });
  }

  /** Whether any tab watches `bucket` (changes elsewhere need no entries made). */
  watches(bucket: string): boolean {
    for (const w of this.watchers.values()) if (w.bucket === bucket) return true;
    return false;
  }

  /** Routes a committed change to every matching watcher. */
  onChange(bucket: string, entries: readonly Entry[], source: ChangeSource): void {
    for (const w of this.watchers.values()) {
      if (w.bucket !== bucket) continue;
      const hits: Entry[] = [];
      for (const e of entries) if (w.match(e.key)) hits.push(e);
      if (hits.length === 0) continue;
      if (w.held !== null) w.held.push({ entries: hits, source });
      else this.pushChange(w, hits, source);
    }
  }

  /**
   * Queues a status event for every tab whose status changed: at once when more than counters
   * changed or {@link STATUS_EVERY_MS} passed since the tab's last one, else once that much
   * time has passed (the newest status then). Only the newest status of a batch is kept.
   */
  status(s: (tabId: string) => ClientStatus): void {
    for (const [tabId, tab] of this.tabs) this.offerStatus(tabId, tab, s(tabId));
  }

  private offerStatus(tabId: string, tab: Tab, st: ClientStatus): void {
    const json = JSON.stringify(st);
    if (tab.sent !== null && tab.sent.json === json) {
      tab.held = null; // back to what the tab has: nothing to send
      return;
    }
    const shape = statusShape(st);
    const now = Date.now();
    const sent = tab.sent;
    if (sent === null || sent.shape !== shape || now - sent.at >= STATUS_EVERY_MS) {
      if (tab.timer !== null) clearTimeout(tab.timer);
      tab.timer = null;
      tab.held = null;
      tab.sent = { json, shape, at: now };
      this.push(tabId, { t: 'status', s: st });
      return;
    }
    tab.held = st;
    tab.timer ??= setTimeout(
      () => {
        tab.timer = null;
        const held = tab.held;
        if (held !== null && this.tabs.get(tabId) === tab) this.offerStatus(tabId, tab, held);
      },
      STATUS_EVERY_MS - (now - sent.at),
    );
  }

  private push(tabId: string, ev: HostEvent): void {
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
      const events = tab.queue;
      tab.queue = [];
      tab.sink(encodeEvents(events));
    }
  }
}
