import { decodeFrame, encodeFrame, pageByColumns } from '../codec';
import type { Env } from '../env';
import { toMittsyncError } from '../errors';
import { BucketHost, type HostConnection } from '../host';
import { MemoryHostStore } from '../host-store';
import type { ClientMessage, ServerMessage, WireLimits } from '../protocol';
import { PROTOCOL_VERSION } from '../protocol';
import type { VersionedSchema } from '../schema';
import { pageSpec } from '../spec';
import type { Transport, TransportHandlers } from '../transport';
import { DEFAULT_LIMITS, validateClientMessage, validateServerMessage } from '../validate';
import type { Scheduler } from './scheduler';

/** Fault rates of the simulated network (per message). */
export interface Faults {
  drop: number;
  dup: number;
  /** Extra random delay (ms) on top of the base latency: this is what reorders messages. */
  jitterMs: number;
  latencyMs: number;
}

export const NO_FAULTS: Faults = { drop: 0, dup: 0, jitterMs: 0, latencyMs: 2 };

interface Link {
  id: number;
  /** One-way latency of this link (ms), on top of the network's. */
  latencyMs: number;
  replicaId: string | null;
  open: boolean;
  handlers: TransportHandlers;
  conns: Map<string, HostConnection>;
}

/**
 * The relay side of the simulation: a BucketHost per bucket on memory stores that survive
 * "relay restarts" (only connections are lost), reached over lossy, duplicating, reordering
 * links. It speaks the same protocol as the real relay, through the same validators.
 */
export class SimRelay {
  readonly stores = new Map<string, MemoryHostStore>();
  readonly hosts = new Map<string, BucketHost>();
  private readonly links = new Map<number, Link>();
  private nextLink = 1;
  faults: Faults = NO_FAULTS;
  up = true;
  readonly limits: WireLimits = { ...DEFAULT_LIMITS, maxDriftMs: 60_000 };
  /** Protocol violations seen (a correct replica never sends a frame that fails validation). */
  readonly invalidFrames: string[] = [];
  /** Tests' hook to drop or duplicate chosen frames ('in' = to the relay, 'out' = to a replica). */
  filter:
    | ((
        dir: 'in' | 'out',
        msg: ClientMessage | ServerMessage,
        replicaId: string | null,
      ) => 'pass' | 'drop' | 'dup')
    | undefined;

  constructor(
    private readonly sched: Scheduler,
    private readonly env: Env,
    private readonly random: () => number,
    private readonly hostOptions: {
      flushTimeoutMs: number;
      tombstoneRetainOps: number;
      tombstoneRetainMs: number;
      splitMinEntries: number;
      pageCache?: { maxBytes?: number };
      /** The buckets' schema, checked on every push (typed-bucket tests). */
      schema?: VersionedSchema;
    },
  ) {}

  host(bucket: string): BucketHost {
    let h = this.hosts.get(bucket);
    if (h === undefined) {
      let store = this.stores.get(bucket);
      if (store === undefined) {
        store = new MemoryHostStore();
        this.stores.set(bucket, store);
      }
      h = new BucketHost({
        bucket,
        store,
        env: this.env,
        limits: this.limits,
        downloadParts: 3,
        ...this.hostOptions,
      });
      this.hosts.set(bucket, h);
    }
    return h;
  }

  /** Delivers with the current faults; returns nothing, like a datagram. */
  private transmit(link: Link, fn: () => void): void {
    const f = this.faults;
    if (this.random() < f.drop) {
      // A lost message on a stream transport means the stream broke: cut the link soon.
      this.sched.setTimeout(() => this.cut(link), link.latencyMs + f.latencyMs + this.random() * f.jitterMs);
      return;
    }
    const copies = this.random() < f.dup ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      this.sched.setTimeout(
        () => {
          if (link.open) fn();
        },
        link.latencyMs + f.latencyMs + this.random() * f.jitterMs,
      );
    }
  }

  connect(handlers: TransportHandlers, latencyMs = 0): Link {
    const link: Link = {
      id: this.nextLink++,
      latencyMs,
      replicaId: null,
      open: true,
      handlers,
      conns: new Map(),
    };
    this.links.set(link.id, link);
    this.sched.setTimeout(() => {
      if (!link.open) return;
      if (!this.up) {
        this.cut(link);
        return;
      }
      handlers.open();
    }, this.faults.latencyMs);
    return link;
  }

  /** Client -> relay. */
  fromClient(link: Link, msg: ClientMessage): void {
    const verdict = this.filter?.('in', msg, link.replicaId) ?? 'pass';
    if (verdict === 'drop') return;
    this.transmit(link, () => this.handle(link, msg));
    if (verdict === 'dup') this.transmit(link, () => this.handle(link, msg));
  }

  private toClient(link: Link, sent: ServerMessage): void {
    const verdict = this.filter?.('out', sent, link.replicaId) ?? 'pass';
    if (verdict === 'drop') return;
    const msg = sent.type === 'deliver' ? (throughPackedOps(sent) as ServerMessage) : sent;
    this.transmit(link, () => link.handlers.message(validateServerMessage(msg)));
    if (verdict === 'dup') this.transmit(link, () => link.handlers.message(validateServerMessage(msg)));
  }

  /** Breaks a link: both ends learn it (the client after a delay). */
  cut(link: Link): void {
    if (!link.open) return;
    link.open = false;
    this.links.delete(link.id);
    for (const [bucket, conn] of link.conns) this.hosts.get(bucket)?.unsubscribe(conn);
    link.conns.clear();
    this.sched.setTimeout(() => link.handlers.close({ code: 1006 }), this.faults.latencyMs);
  }

  /**
   * A relay restart: every connection drops and the bucket hosts go with the process (each is
   * loaded again from its store on first use); durable state stays.
   */
  restart(downForMs: number): void {
    for (const l of [...this.links.values()]) this.cut(l);
    this.hosts.clear();
    this.up = false;
    this.sched.setTimeout(() => {
      this.up = true;
    }, downForMs);
  }

  private conn(link: Link, bucket: string): HostConnection {
    let c = link.conns.get(bucket);
    if (c === undefined) {
      const replicaId = link.replicaId as string;
      c = {
        id: `${link.id}:${bucket}`,
        replicaId,
        canWrite: true,
        send: (m) => this.toClient(link, m),
      };
      link.conns.set(bucket, c);
    }
    return c;
  }

  private handle(link: Link, raw: ClientMessage): void {
    let msg: ClientMessage;
    try {
      msg = validateClientMessage(raw.type === 'push' ? throughPackedOps(raw) : raw, this.limits);
    } catch (e) {
      this.invalidFrames.push(String(e));
      return;
    }
    if (link.replicaId === null) {
      if (msg.type !== 'hello' || msg.v !== PROTOCOL_VERSION) {
        this.cut(link);
        return;
      }
      link.replicaId = msg.replicaId;
      this.toClient(link, {
        type: 'welcome',
        v: PROTOCOL_VERSION,
        relayTime: this.env.now(),
        limits: this.limits,
      });
      return;
    }
    switch (msg.type) {
      case 'hello':
        return;
      case 'auth':
        this.toClient(link, { type: 'authed', expiresAt: this.env.now() + 3_600_000 });
        return;
      case 'ping': {
        const heads: Record<string, number> = {};
        for (const [bucket, c] of link.conns) {
          const h = this.hosts.get(bucket);
          if (h?.isSubscribed(c)) heads[bucket] = h.state.head;
        }
        this.toClient(link, { type: 'pong', id: msg.id, heads });
        return;
      }
      case 'sub':
        this.host(msg.bucket).subscribe(this.conn(link, msg.bucket), msg);
        return;
      case 'unsub':
        this.host(msg.bucket).unsubscribe(this.conn(link, msg.bucket));
        return;
      case 'push':
        this.host(msg.bucket).push(link.replicaId, msg, this.conn(link, msg.bucket));
        return;
      case 'pageReq': {
        // As the relay's session does: the subscription's spec, narrowed to the request's.
        const host = this.host(msg.bucket);
        let spec: ReturnType<typeof pageSpec>;
        try {
          spec = pageSpec(msg.spec, host.specOf(this.conn(link, msg.bucket)));
        } catch (e) {
          // A page request that overtook its `sub` (the simulator reorders frames): refused,
          // as the relay's session refuses it, and the replica asks again.
          const err = toMittsyncError(e);
          this.toClient(link, {
            type: 'error',
            code: err.code,
            message: err.message,
            bucket: msg.bucket,
            reqId: msg.reqId,
          });
          return;
        }
        const page = host.page(msg, spec);
        // As the relay does: columns when asked for, through the real codec (packed and read
        // back, so every simulated join runs the column path end to end).
        const cols = msg.cols === true ? pageByColumns(page) : page;
        this.toClient(link, cols === page ? page : (decodeFrame(encodeFrame(cols)) as ServerMessage));
        return;
      }
      case 'markerReply':
        this.host(msg.bucket).markerReply(this.conn(link, msg.bucket), msg);
        return;
      case 'ckpt':
        this.host(msg.bucket).checkpoint(this.conn(link, msg.bucket), msg);
        return;
    }
  }
}

/**
 * A deliver or push as the other side reads it over a binary socket that negotiated packed
 * ops: through the real codec, so every simulated op runs the packed path end to end.
 */
function throughPackedOps(msg: ServerMessage | ClientMessage): unknown {
  return decodeFrame(encodeFrame(msg, 'msgpack', { packOps: true }));
}

/** The replica side of a simulated link. */
export class SimTransport implements Transport {
  private link: Link | null = null;
  /** Set when the replica "crashed": nothing more goes out or comes in. */
  dead = false;

  constructor(
    private readonly relay: SimRelay,
    private readonly latencyMs = 0,
  ) {}

  connect(handlers: TransportHandlers): void {
    const guarded: TransportHandlers = {
      open: () => !this.dead && handlers.open(),
      message: (m) => !this.dead && handlers.message(m),
      close: (i) => {
        if (this.dead) return;
        this.link = null;
        handlers.close(i);
      },
    };
    this.link = this.relay.connect(guarded, this.latencyMs);
  }

  send(msg: ClientMessage): void {
    if (this.link?.open && !this.dead) this.relay.fromClient(this.link, msg);
  }

  close(): void {
    if (this.link !== null) this.relay.cut(this.link);
  }

  /** Cuts the link from the network side (a disconnect the replica did not ask for). */
  cut(): void {
    this.close();
  }
}
