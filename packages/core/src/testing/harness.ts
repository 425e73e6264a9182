import type { Env } from '../env';
import { MemoryReplicaStorage } from '../memory-storage';
import { Replica, type ReplicaOptions } from '../replica';
import type { VersionedSchema } from '../schema';
import { SimRelay, SimTransport } from '../sim/network';
import { prng, Scheduler } from '../sim/scheduler';

/** One replica in a {@link Harness}: its storage outlives restarts. */
export interface HarnessReplica {
  replica: Replica;
  storage: MemoryReplicaStorage;
  transport: SimTransport;
  /** Frames this replica sent, in order. */
  sent: { type: string; bucket?: string; since?: number }[];
}

/**
 * Deterministic test bed: real Replica and BucketHost instances on virtual time, connected by
 * the simulator's network (no faults unless a test sets `relay.faults` or `relay.filter`).
 */
export class Harness {
  readonly sched = new Scheduler();
  readonly relay: SimRelay;
  /** Offset added to the relay clock (ms). */
  relayClockOffset = 0;
  private readonly settleFn: () => Promise<void>;

  constructor(
    settle: () => Promise<void>,
    hostOptions: Partial<{
      flushTimeoutMs: number;
      tombstoneRetainOps: number;
      tombstoneRetainMs: number;
      splitMinEntries: number;
      schema: VersionedSchema;
    }> = {},
  ) {
    this.settleFn = settle;
    const env: Env = {
      now: () => 1_700_000_000_000 + this.sched.now + this.relayClockOffset,
      setTimeout: (fn, ms) => this.sched.setTimeout(fn, ms),
      clearTimeout: (h) => this.sched.clearTimeout(h),
      random: prng(7),
    };
    this.relay = new SimRelay(this.sched, env, prng(11), {
      flushTimeoutMs: 500,
      tombstoneRetainOps: 1_000_000,
      tombstoneRetainMs: 1_000_000,
      splitMinEntries: 1_000_000,
      ...hostOptions,
    });
  }

  /** Opens a replica named `id` (clock offset `skewMs` from the relay's). */
  async open(
    id: string,
    opts: Partial<ReplicaOptions> & { skewMs?: () => number; storage?: MemoryReplicaStorage } = {},
  ): Promise<HarnessReplica> {
    const storage = opts.storage ?? new MemoryReplicaStorage();
    const transport = new SimTransport(this.relay);
    const sent: HarnessReplica['sent'] = [];
    const send = transport.send.bind(transport);
    transport.send = (m) => {
      sent.push({
        type: m.type,
        ...('bucket' in m ? { bucket: m.bucket } : {}),
        ...('since' in m ? { since: m.since } : {}),
      });
      send(m);
    };
    const skew = opts.skewMs ?? (() => 0);
    const env: Env = {
      now: () => 1_700_000_000_000 + this.sched.now + skew(),
      setTimeout: (fn, ms) => this.sched.setTimeout(fn, ms),
      clearTimeout: (h) => this.sched.clearTimeout(h),
      random: prng(id.length * 31 + id.charCodeAt(0)),
    };
    const replica = await Replica.open({
      ackTimeoutMs: 300,
      gapTimeoutMs: 200,
      requestTimeoutMs: 1_000,
      pingIntervalMs: 1_000,
      backoff: { baseMs: 20, capMs: 200 },
      ...opts,
      storage,
      transport,
      env,
      replicaId: id,
    });
    return { replica, storage, transport, sent };
  }

  /** Advances virtual time by `ms`, running everything due. */
  run(ms: number): Promise<void> {
    return this.sched.runUntil(this.sched.now + ms, this.settleFn);
  }
}
