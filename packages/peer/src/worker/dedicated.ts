import { MittsyncError, toMittsyncError } from '@mittsync/core';
import { randomId } from '@mittsync/core/model';
import type { AttachInfo, HostConfig, Outcome, Request } from './api';
import { ReplicaHost, type TokenSource } from './replica-host';
import type { EventSink } from './watchers';

/** What a worker's tab port talks to: the local host, or the leader tab's host. */
export interface Backend {
  attach(
    tabId: string,
    sink: EventSink,
    getToken: TokenSource | null,
    release: () => void,
  ): Promise<AttachInfo>;
  request(tabId: string, req: Request): Promise<unknown>;
  detach(tabId: string): Promise<void>;
}

type Wire =
  | { k: 'leader'; node: string }
  | { k: 'who' }
  | { k: 'req'; id: number; from: string; to: string; tab: string; call: 'attach' | 'detach' | Request }
  | { k: 'got'; id: number; to: string }
  | { k: 'res'; id: number; to: string; outcome: Outcome<unknown> }
  | { k: 'evt'; tab: string; bytes: Uint8Array };

interface Pending {
  call: 'attach' | 'detach' | Request;
  /** The leader it was sent to (null: not sent yet, no leader known). */
  sentTo: string | null;
  /** The leader confirmed it got the request (before that, a dead leader never saw it). */
  received: boolean;
  tab: string;
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

/** Requests safe to send again after a leader died with them in flight (they change nothing). */
function retryable(call: Pending['call']): boolean {
  return call === 'attach' || call === 'detach' || (call.op !== 'transact' && call.op !== 'unwatch');
}

function fail(e: unknown): Outcome<never> {
  const err = toMittsyncError(e);
  return {
    ok: false,
    error: { code: err.code, message: err.message, ...(err.detail ? { detail: { ...err.detail } } : {}) },
  };
}

/**
 * The fallback where there is no SharedWorker: every tab runs this in its own dedicated
 * worker, and a Web Lock elects the one that hosts the replica (the leader). The others
 * forward their tab's requests over a BroadcastChannel and get its events back the same way.
 * The leader confirms each request as it gets it, so requests a dead leader never saw are
 * simply sent to the next one.
 * When the leader's tab closes, its lock is released, the next tab in line takes over (from
 * the same IndexedDB), announces itself, and every follower re-attaches and re-registers its
 * live queries, which restart with a fresh snapshot. Reads in flight are re-sent; a write the
 * dead leader had confirmed fails with `CLOSED`, since it may or may not have been committed.
 */
export class DedicatedBackend implements Backend {
  private readonly node = `n${randomId(Math.random, 12)}`;
  private readonly channel: BroadcastChannel;
  private host: ReplicaHost | null = null;
  private leader: string | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** This worker's own tab (one per dedicated worker). */
  private local: {
    tabId: string;
    sink: EventSink;
    getToken: TokenSource | null;
    release: () => void;
  } | null = null;
  private readonly watches = new Map<number, Request>();

  constructor(private readonly config: HostConfig) {
    this.channel = new BroadcastChannel(`mittsync-hosts:${config.dbName}`);
    this.channel.onmessage = (ev: MessageEvent<Wire>) => this.onWire(ev.data);
    void navigator.locks.request(`mittsync-leader:${config.dbName}`, () => this.lead());
    this.post({ k: 'who' });
  }

  private post(msg: Wire): void {
    this.channel.postMessage(msg);
  }

  /** Runs while we hold the leader lock, i.e. until this worker dies. */
  private async lead(): Promise<void> {
    const host = new ReplicaHost(this.config, 'leader');
    this.host = host;
    this.leader = this.node;
    const mine = this.local;
    if (mine !== null) {
      await host.attach(mine.tabId, mine.sink, mine.getToken, mine.release).catch(() => undefined);
      for (const w of this.watches.values()) await host.request(mine.tabId, w).catch(() => undefined);
    }
    this.post({ k: 'leader', node: this.node });
    this.settleAll();
    await new Promise<never>(() => {});
  }

  /** Leader changed: requests in flight to the old one are re-sent (reads) or failed (writes). */
  private settleAll(): void {
    for (const [id, p] of [...this.pending]) {
      if (p.sentTo === this.leader) continue;
      this.pending.delete(id);
      if (p.sentTo === null || !p.received || retryable(p.call))
        this.dispatch(p.tab, p.call).then(p.resolve, p.reject);
      else
        p.reject(
          new MittsyncError(
            'CLOSED',
            'the tab hosting the replica closed before confirming this write; it may or may not be stored',
          ),
        );
    }
  }

  private onWire(msg: Wire): void {
    switch (msg.k) {
      case 'who':
        if (this.host !== null) this.post({ k: 'leader', node: this.node });
        return;
      case 'leader':
        if (msg.node === this.leader) return;
        this.leader = msg.node;
        if (this.local !== null) {
          // Re-attach to the new leader, then re-register live queries (fresh snapshots).
          const { tabId } = this.local;
          void this.forward(tabId, 'attach').then(() =>
            Promise.all([...this.watches.values()].map((w) => this.forward(tabId, w))),
          );
        }
        this.settleAll();
        return;
      case 'req':
        if (msg.to === this.node && this.host !== null) {
          this.post({ k: 'got', id: msg.id, to: msg.from });
          void this.serve(msg);
        }
        return;
      case 'got': {
        const p = msg.to === this.node ? this.pending.get(msg.id) : undefined;
        if (p !== undefined) p.received = true;
        return;
      }
      case 'res': {
        if (msg.to !== this.node) return;
        const p = this.pending.get(msg.id);
        if (p === undefined) return;
        this.pending.delete(msg.id);
        if (msg.outcome.ok) p.resolve(msg.outcome.value);
        else
          p.reject(
            new MittsyncError(msg.outcome.error.code as MittsyncError['code'], msg.outcome.error.message),
          );
        return;
      }
      case 'evt':
        if (this.local !== null && msg.tab === this.local.tabId) this.local.sink(msg.bytes);
        return;
    }
  }

  /** Leader side: runs a follower's call on the host. */
  private async serve(msg: Extract<Wire, { k: 'req' }>): Promise<void> {
    const host = this.host as ReplicaHost;
    let outcome: Outcome<unknown>;
    try {
      let value: unknown = null;
      if (msg.call === 'attach') {
        const tab = msg.tab;
        value = await host.attach(tab, (bytes) => this.post({ k: 'evt', tab, bytes }), null, undefined, true);
      } else if (msg.call === 'detach') await host.detach(msg.tab);
      else value = await host.request(msg.tab, msg.call);
      outcome = { ok: true, value };
    } catch (e) {
      outcome = fail(e);
    }
    this.post({ k: 'res', id: msg.id, to: msg.from, outcome });
  }

  private forward(tab: string, call: Pending['call']): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      this.pending.set(id, { call, tab, sentTo: this.leader, received: false, resolve, reject });
      if (this.leader !== null) this.post({ k: 'req', id, from: this.node, to: this.leader, tab, call });
      // else: sent by settleAll() once a leader announces itself
    });
  }

  private dispatch(tab: string, call: Pending['call']): Promise<unknown> {
    const host = this.host;
    if (host === null) return this.forward(tab, call);
    if (call === 'attach') {
      const mine = this.local;
      return host.attach(tab, mine?.sink ?? (() => {}), mine?.getToken ?? null, mine?.release ?? (() => {}));
    }
    if (call === 'detach') return host.detach(tab);
    return host.request(tab, call);
  }

  attach(
    tabId: string,
    sink: EventSink,
    getToken: TokenSource | null,
    release: () => void,
  ): Promise<AttachInfo> {
    this.local = { tabId, sink, getToken, release };
    return this.dispatch(tabId, 'attach') as Promise<AttachInfo>;
  }

  async request(tabId: string, req: Request): Promise<unknown> {
    if (req.op === 'watch') this.watches.set(req.watchId, req);
    if (req.op === 'unwatch') this.watches.delete(req.watchId);
    return this.dispatch(tabId, req);
  }

  async detach(tabId: string): Promise<void> {
    await this.dispatch(tabId, 'detach').catch(() => undefined);
    this.local = null;
    // This tab's worker is about to be terminated: close the database cleanly first.
    await this.host?.close();
  }
}
