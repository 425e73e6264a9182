import { checksumOf } from '../checksum';
import type { Env } from '../env';
import { hlcNode } from '../hlc';
import { MemoryReplicaStorage } from '../memory-storage';
import type { Entry, Op } from '../model';
import { Replica } from '../replica';
import { type ReplicationSpec, specCovers } from '../spec';
import type { BucketMeta, ReplicaStorage, ScanQuery, StorageBatch, StoredIdentity } from '../storage';
import { NO_FAULTS, SimRelay, SimTransport } from './network';
import { prng, Scheduler } from './scheduler';
import { planSilence } from './silence';

/** Outcome of one simulated run. */
export interface SimResult {
  seed: number;
  violations: string[];
  stats: {
    steps: number;
    writes: number;
    joins: number;
    readies: number;
    crashes: number;
    verified: number;
    /** Live spec changes that took effect. */
    specChanges: number;
  };
  /** With {@link SimOptions.silence}: nodes silenced past retention, and `retention` resets sent. */
  silence?: { silenced: number; retentionResets: number };
}

/** Optional scenarios of a run, each in a module of its own. */
export interface SimOptions {
  /** Replicas going silent past the retention period (silence.ts). */
  silence?: boolean;
}

/** A storage wrapper that goes silent when its process "crashes": nothing after that lands. */
class CrashableStorage implements ReplicaStorage {
  dead = false;
  readonly persistent = true;
  /** Half the nodes take columns (the browser store's way), half entries (the replica makes them). */
  constructor(
    readonly inner: MemoryReplicaStorage,
    readonly columnar: boolean,
  ) {}
  private guard<T>(fn: () => Promise<T>): Promise<T> {
    return this.dead ? new Promise<T>(() => undefined) : fn();
  }
  open(): Promise<StoredIdentity | null> {
    return this.guard(() => this.inner.open());
  }
  saveIdentity(i: StoredIdentity): Promise<void> {
    return this.guard(() => this.inner.saveIdentity(i));
  }
  listBuckets(): Promise<BucketMeta[]> {
    return this.guard(() => this.inner.listBuckets());
  }
  loadBucket(b: string): Promise<BucketMeta | undefined> {
    return this.guard(() => this.inner.loadBucket(b));
  }
  getEntries(b: string, k: readonly string[]): Promise<(Entry | undefined)[]> {
    return this.guard(() => this.inner.getEntries(b, k));
  }
  scan(b: string, q: ScanQuery): Promise<Entry[]> {
    return this.guard(() => this.inner.scan(b, q));
  }
  loadOutbox(b: string): Promise<Op[]> {
    return this.guard(() => this.inner.loadOutbox(b));
  }
  commit(batch: StorageBatch): Promise<void> {
    return this.guard(() => this.inner.commit(batch));
  }
  resetBucket(b: string, keep: readonly string[], meta: BucketMeta): Promise<void> {
    return this.guard(() => this.inner.resetBucket(b, keep, meta));
  }
  close(): Promise<void> {
    return this.guard(() => this.inner.close());
  }
}

interface Node {
  name: string;
  index: number;
  replicaId: string;
  memory: MemoryReplicaStorage;
  storage: CrashableStorage | null;
  transport: SimTransport | null;
  replica: Replica | null;
  skew: number;
  /** One-way latency of this node's link: some devices sit behind slow networks. */
  latencyMs: number;
  buckets: string[];
  gen: number;
  starting: boolean;
  /** Virtual time of the last `sub` with since=0 per bucket (when the join began). */
  joinStartedAt: Map<string, number>;
  lastSubWasJoin: Map<string, boolean>;
  /** The spec this node holds each bucket with (undefined: whole), as last set successfully. */
  specs: Map<string, ReplicationSpec | undefined>;
  /** Buckets this node holds `readOnly`. */
  readOnly: Set<string>;
}

/** Specs over the simulator's keys (`k00`...): prefixes, ranges, both, or the whole bucket. */
const SPECS: (ReplicationSpec | undefined)[] = [
  undefined,
  { prefixes: ['k0'] },
  { prefixes: ['k1', 'k3'] },
  { ranges: [{ gte: 'k05', lt: 'k2' }] },
  { prefixes: ['k2'], ranges: [{ lt: 'k04' }] },
];

interface Written {
  bucket: string;
  key: string;
  hlc: string;
  deleted: boolean;
  value: unknown;
  at: number;
}

/**
 * One seeded run: replicas write, join, resume, crash and restart over a network that drops,
 * duplicates, delays and reorders; the relay restarts; clocks skew and jump. Then faults stop,
 * everything reconnects and quiesces, and the invariants are checked.
 */
export async function runSeed(
  seed: number,
  settle: () => Promise<void>,
  debug?: { log: (...args: unknown[]) => void; node?: string },
  options: SimOptions = {},
): Promise<SimResult> {
  const log = debug?.log ?? (() => undefined);
  const rnd = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const between = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const sched = new Scheduler();
  const violations: string[] = [];
  const stats = { steps: 0, writes: 0, joins: 0, readies: 0, crashes: 0, verified: 0, specChanges: 0 };

  const relayEnv: Env = {
    now: () => 1_700_000_000_000 + sched.now,
    setTimeout: (fn, ms) => sched.setTimeout(fn, ms),
    clearTimeout: (h) => sched.clearTimeout(h),
    random: prng(seed ^ 0x5eed),
  };
  const smallHorizon = rnd() < 0.4;
  // Its own random stream: runs without the option draw exactly what they drew before.
  const silence = options.silence === true ? planSilence(prng(seed ^ 0x5113)) : undefined;
  const relay = new SimRelay(sched, relayEnv, prng(seed ^ 0xfa17), {
    flushTimeoutMs: 400,
    tombstoneRetainOps: smallHorizon ? between(4, 30) : 1_000_000,
    tombstoneRetainMs: smallHorizon ? between(0, 3_000) : 1_000_000,
    splitMinEntries: between(2, 12),
    // The page cache (on by default) evicting often in a third of the runs; own stream too.
    ...(prng(seed ^ 0xcace)() < 0.33 ? { pageCache: { maxBytes: 600 } } : {}),
    ...silence?.hostOptions,
  });
  silence?.observe(relay);
  const allBuckets = rnd() < 0.5 ? ['a'] : ['a', 'b'];
  // Specs and policies draw from their own stream, so adding them left the other draws alone.
  const srnd = prng(seed ^ 0x5bec);
  const spick = <T>(xs: readonly T[]): T => xs[Math.floor(srnd() * xs.length)] as T;
  const keyCount = between(4, 60);
  const keys = Array.from({ length: keyCount }, (_, i) => `k${i.toString().padStart(2, '0')}`);
  const written: Written[] = [];
  const byHlc = new Map<string, Written>();
  const replicaOpts = {
    pageSize: between(2, 8),
    parallelRanges: between(1, 3),
    pushBatch: between(1, 6),
    pushWindow: between(2, 20),
    mitt:
      rnd() < 0.5
        ? { maxOps: between(2, 12), maxBytes: 1 << 20, maxAhead: 200, maxKept: between(0, 20) }
        : {},
    ackTimeoutMs: 1_000,
    gapTimeoutMs: 400,
    requestTimeoutMs: 2_000,
    pingIntervalMs: 1_000,
    backoff: { baseMs: 30, capMs: 600 },
  };

  const nodes: Node[] = Array.from({ length: between(2, 6) }, (_, i) => ({
    name: `n${i}`,
    index: i,
    replicaId: `r${i}x${seed.toString(36)}`,
    memory: new MemoryReplicaStorage(),
    storage: null,
    transport: null,
    replica: null,
    skew: between(-20_000, 20_000),
    latencyMs: rnd() < 0.4 ? between(50, 250) : between(0, 5),
    buckets: allBuckets.filter((_, j) => j === 0 || rnd() < 0.7),
    gen: 0,
    starting: false,
    joinStartedAt: new Map(),
    lastSubWasJoin: new Map(),
    specs: new Map(),
    readOnly: new Set(),
  }));
  // Node 0 holds everything, read-write; the others may hold part of a bucket, or read only.
  for (const n of nodes.slice(1)) {
    for (const b of n.buckets) {
      if (srnd() < 0.5) n.specs.set(b, spick(SPECS));
      if (srnd() < 0.15) n.readOnly.add(b);
    }
  }
  /** The spec `n` stores for `bucket` now (what its state must match at the end). */
  const storedSpec = (n: Node, bucket: string): ReplicationSpec | undefined =>
    n.memory.peekMeta(bucket).meta?.spec;
  /** Set once faults stop: from then on every join must complete its state flush. */
  let quiet = false;

  const start = async (n: Node): Promise<void> => {
    log(sched.now, 'start', n.name, n.replica !== null, n.starting);
    if (n.replica !== null || n.starting || silence?.holds(n.index, quiet) === true) return;
    n.starting = true;
    const gen = ++n.gen;
    const storage = new CrashableStorage(n.memory, n.index % 2 === 0);
    const transport = new SimTransport(relay, n.latencyMs);
    const alive = () => n.gen === gen;
    const nodeRandom = prng(seed * 31 + n.index * 7919 + gen);
    const env: Env = {
      now: () => 1_700_000_000_000 + sched.now + n.skew,
      setTimeout: (fn, ms) => sched.setTimeout(() => alive() && fn(), ms),
      clearTimeout: (h) => sched.clearTimeout(h),
      random: nodeRandom,
    };
    const send = transport.send.bind(transport);
    const dbg = debug?.node === n.name;
    if (dbg) {
      const connect = transport.connect.bind(transport);
      transport.connect = (h) =>
        connect({
          open: () => {
            log(sched.now, n.name, 'open');
            h.open();
          },
          close: (i) => {
            log(sched.now, n.name, 'close');
            h.close(i);
          },
          message: (m) => {
            log(sched.now, n.name, '<-', JSON.stringify(m).slice(0, 300));
            h.message(m);
          },
        });
    }
    transport.send = (msg) => {
      if (dbg) log(sched.now, n.name, '->', JSON.stringify(msg).slice(0, 300));
      if (msg.type === 'sub') n.lastSubWasJoin.set(msg.bucket, msg.since === 0);
      if (msg.type === 'sub' && msg.since === 0) {
        n.joinStartedAt.set(msg.bucket, sched.now);
        stats.joins++;
      }
      send(msg);
    };
    n.storage = storage;
    n.transport = transport;
    const replica = await Replica.open({ storage, transport, env, replicaId: n.replicaId, ...replicaOpts });
    if (!alive()) return;
    n.replica = replica;
    n.starting = false;
    replica.onChange((bucket, entries, source) => {
      if (source !== 'local') return;
      for (const e of entries) {
        const w: Written = {
          bucket,
          key: e.key,
          hlc: e.hlc,
          deleted: e.deleted === true,
          value: e.value,
          at: sched.now,
        };
        written.push(w);
        byHlc.set(`${bucket}/${e.key}/${e.hlc}`, w);
      }
    });
    replica.onStatus((s) => {
      for (const b of s.buckets) {
        if (b.lastError?.code === 'CHECKSUM_MISMATCH')
          violations.push(`${n.name}: checksum mismatch on ${b.bucket}`);
      }
    });
    replica.onReady((info) => {
      stats.readies++;
      if (quiet && info.flush !== 'done' && n.lastSubWasJoin.get(info.bucket)) {
        violations.push(
          `${n.name} joined ${info.bucket} without a completed state flush (${info.flush}) on a quiet network`,
        );
      }
      const startedAt = n.joinStartedAt.get(info.bucket);
      if (info.covered.length === 0 || startedAt === undefined) return;
      const stored = n.memory.peek(info.bucket);
      for (const w of written) {
        if (w.bucket !== info.bucket || w.at >= startedAt || !info.covered.includes(hlcNode(w.hlc))) continue;
        if (!specCovers(storedSpec(n, info.bucket), w.key)) continue;
        const e = stored.get(w.key);
        // Superseded by a delete the relay has purged: absent, or our own pending write shown
        // locally until the relay rules on it, are both right.
        if ((e === undefined || e.seq === 0) && absentIsRight(w)) continue;
        if (e === undefined || e.hlc < w.hlc) {
          violations.push(
            `${n.name} ready on ${info.bucket} at ${sched.now} lacks ${w.key}@${w.hlc} written at ${w.at} before its join began at ${startedAt} by covered writer (has ${JSON.stringify(e)}, relay has ${JSON.stringify(relay.stores.get(info.bucket)?.getEntry(w.key))}, ready ${JSON.stringify(info)})`,
          );
        }
      }
    });
    const openAll = (attempt: number): void => {
      for (const b of n.buckets) {
        const spec = n.specs.get(b);
        replica
          .openBucket(b, { spec: spec ?? null, ...(n.readOnly.has(b) ? { policy: 'readOnly' } : {}) })
          .catch(() => {
            // Storage trouble while opening: try again shortly, like an app would.
            if (attempt < 20) sched.setTimeout(() => alive() && openAll(attempt + 1), 50);
          });
      }
    };
    openAll(0);
  };

  /**
   * A key may be absent after a write when a newer delete's tombstone was purged, or when the
   * write was older than a purged tombstone and so was taken as deleted (host.ts, applyOp).
   */
  const absentIsRight = (w: Written): boolean =>
    w.hlc <= (relay.hosts.get(w.bucket)?.state.purgedHlc ?? '') ||
    written.some((d) => d.deleted && d.bucket === w.bucket && d.key === w.key && d.hlc > w.hlc);

  const crash = (n: Node): void => {
    log(sched.now, 'crash', n.name, n.replica !== null);
    if (n.replica === null) return;
    stats.crashes++;
    n.gen++;
    if (n.storage) n.storage.dead = true;
    if (n.transport) {
      n.transport.cut();
      n.transport.dead = true;
    }
    n.replica = null;
    n.starting = false;
  };

  const write = (n: Node): void => {
    const r = n.replica;
    if (r === null) return;
    const bucket = pick(n.buckets);
    const spec = n.specs.get(bucket);
    const inSpec = keys.filter((k) => specCovers(spec, k));
    // Mostly keys of the node's spec; now and then one outside it, which must be refused.
    const key = inSpec.length > 0 && srnd() < 0.9 ? spick(inSpec) : pick(keys);
    const relayAck = rnd() < 0.3;
    // (A write may open the bucket before `openBucket` set its policy: only a known readOnly counts.)
    const readOnly = r.status(bucket)?.policy === 'readOnly';
    const p =
      rnd() < 0.8
        ? r.put(bucket, key, { v: between(0, 999), by: n.name }, relayAck ? { ack: 'relay' } : {})
        : r.del(bucket, key, relayAck ? { ack: 'relay' } : {});
    stats.writes++;
    p.then(
      (op) => {
        if (!relayAck) return;
        const e = relay.stores.get(bucket)?.getEntry(op.key);
        if (e === undefined ? op.hlc > (relay.hosts.get(bucket)?.state.purgedHlc ?? '') : e.hlc < op.hlc) {
          violations.push(
            `${n.name}: ${bucket}/${op.key}@${op.hlc} acked at relay level but not on the relay`,
          );
        }
      },
      (e: { code?: string }) => {
        // A crash or close abandons the promise (the write stays in the outbox); a readOnly
        // bucket must refuse every write.
        if (readOnly && n.replica === r && typeof e.code === 'string' && e.code !== 'READ_ONLY')
          violations.push(`${n.name}: a write to readOnly ${bucket} failed with ${e.code}, not READ_ONLY`);
      },
    );
    if (readOnly)
      p.then(
        () => violations.push(`${n.name}: readOnly ${bucket} took a write`),
        () => undefined,
      );
  };

  /** Changes a node's spec of a bucket, live (refused while writes outside the new one are pending). */
  const changeSpec = (n: Node): void => {
    const r = n.replica;
    if (r === null || n.index === 0) return;
    const bucket = pick(n.buckets);
    const spec = spick(SPECS);
    r.setSpec(bucket, spec ?? null).then(
      () => {
        if (n.replica !== r) return;
        n.specs.set(bucket, spec);
        stats.specChanges++;
      },
      () => undefined,
    );
  };

  // Initial population: some nodes start now, others join later while writers write.
  for (const n of nodes) if (n.index === 0 || rnd() < 0.6) void start(n);

  const chaosMs = between(2_000, 6_000);
  silence?.schedule(sched, chaosMs, nodes.length, (i) => crash(nodes[i] as Node));
  const faults = {
    drop: rnd() * 0.03,
    dup: rnd() * 0.05,
    jitterMs: between(0, 40),
    latencyMs: between(1, 8),
  };
  relay.faults = faults;
  let t = 0;
  for (;;) {
    t += between(1, rnd() < 0.5 ? 20 : 120);
    if (t >= chaosMs) break;
    const at = t;
    sched.setTimeout(() => {
      const n = pick(nodes);
      const roll = rnd();
      if (roll < 0.72) write(n);
      else if (roll < 0.8) void start(n);
      else if (roll < 0.85) n.transport?.cut();
      else if (roll < 0.88) crash(n);
      else if (roll < 0.9)
        n.skew -= between(0, 5_000); // the wall clock jumps backwards
      else if (roll < 0.905) relay.restart(between(10, 300));
      else if (roll < 0.92) n.memory.failNextCommits = between(1, 3); // storage trouble
      if (srnd() < 0.04) changeSpec(n);
    }, at);
  }
  await sched.runUntil(chaosMs, settle);

  // Quiesce: no more faults, everyone up and connected.
  relay.faults = NO_FAULTS;
  // Let the last lost frames' links break and timers of the chaos phase run out first.
  await sched.runUntil(sched.now + 3_000, settle);
  quiet = true;
  for (const n of nodes) void start(n);
  for (let round = 0; round < 40; round++) {
    await sched.runUntil(sched.now + 1_000, settle);
    const settled = nodes.every((n) => {
      const r = n.replica;
      if (r === null) return false;
      return n.buckets.every((b) => {
        const s = r.status(b);
        return (
          s !== undefined &&
          s.phase === 'ready' &&
          s.pending === 0 &&
          s.checkpoint === relay.hosts.get(b)?.state.head
        );
      });
    });
    if (settled && round > 2) break;
  }
  stats.steps = sched.steps;

  // Invariants.
  for (const bucket of allBuckets) {
    const store = relay.stores.get(bucket);
    const host = relay.hosts.get(bucket);
    const hostEntries = new Map((store?.allEntries() ?? []).map((e) => [e.key, e]));
    const model = new Map<string, Written>();
    for (const w of written) {
      if (w.bucket !== bucket) continue;
      const cur = model.get(w.key);
      if (cur === undefined || w.hlc > cur.hlc) model.set(w.key, w);
    }
    for (const [key, w] of model) {
      const e = hostEntries.get(key);
      if (e === undefined) {
        if (!w.deleted && !absentIsRight(w)) violations.push(`relay lost ${bucket}/${key}@${w.hlc}`);
        continue;
      }
      if (e.hlc < w.hlc) violations.push(`relay has ${bucket}/${key}@${e.hlc}, older than written ${w.hlc}`);
      else if (e.hlc === w.hlc) {
        if ((e.deleted === true) !== w.deleted || JSON.stringify(e.value) !== JSON.stringify(w.value)) {
          violations.push(`relay ${bucket}/${key}@${e.hlc} differs from the write with that version`);
        }
      } else if (!e.deleted || !written.some((d) => d.deleted && d.hlc === e.hlc)) {
        // Newer than every write to the key: only a tombstone a purged delete stood for may be.
        violations.push(`relay ${bucket}/${key}@${e.hlc} is newer than any write`);
      }
    }
    for (const key of hostEntries.keys())
      if (!model.has(key)) violations.push(`relay has ${bucket}/${key} nobody wrote`);
    const allLive = [...hostEntries.values()].filter((e) => !e.deleted);
    for (const n of nodes) {
      if (!n.buckets.includes(bucket)) continue;
      const s = n.replica?.status(bucket);
      if (s === undefined) {
        violations.push(
          `${n.name} not running at the end (replica ${n.replica === null ? 'absent' : 'present'}, starting ${n.starting}, buckets ${JSON.stringify(n.replica?.status())})`,
        );
        continue;
      }
      stats.verified += s.verified;
      if (s.phase !== 'ready') violations.push(`${n.name} ${bucket} not ready at the end (${s.phase})`);
      if (s.pending !== 0) violations.push(`${n.name} ${bucket} still has ${s.pending} pending ops`);
      if (s.checkpoint !== host?.state.head)
        violations.push(`${n.name} ${bucket} checkpoint ${s.checkpoint} != head ${host?.state.head}`);
      // Every replica equals the relay's state restricted to its spec.
      const spec = storedSpec(n, bucket);
      if (spec !== n.specs.get(bucket) && JSON.stringify(spec) !== JSON.stringify(n.specs.get(bucket)))
        violations.push(
          `${n.name} ${bucket} stores spec ${JSON.stringify(spec)}, not ${JSON.stringify(n.specs.get(bucket))}`,
        );
      const hostLive = allLive.filter((e) => specCovers(spec, e.key));
      const mine = [...n.memory.peek(bucket).values()].filter((e) => !e.deleted);
      const diff = diffEntries(hostLive, mine);
      if (diff !== null) violations.push(`${n.name} ${bucket} diverges from the relay: ${diff}`);
      const meta = n.memory.peekMeta(bucket).meta;
      const hs = spec === undefined ? host?.state.sum : checksumOf(hostLive);
      if (
        meta === undefined ||
        hs === undefined ||
        meta.sum.count !== hs.count ||
        meta.sum.a !== hs.a ||
        meta.sum.b !== hs.b
      ) {
        violations.push(`${n.name} ${bucket} checksum differs from the relay's`);
      }
    }
  }
  if (relay.invalidFrames.length > 0) violations.push(`relay saw invalid frames: ${relay.invalidFrames[0]}`);
  for (const n of nodes) crash(n);
  return {
    seed,
    violations: [...new Set(violations)],
    stats,
    ...(silence === undefined ? {} : { silence: { ...silence.stats } }),
  };
}

function diffEntries(a: Entry[], b: Entry[]): string | null {
  const bm = new Map(b.map((e) => [e.key, e]));
  for (const e of a) {
    const o = bm.get(e.key);
    if (o === undefined) return `missing ${e.key}@${e.hlc}`;
    if (o.hlc !== e.hlc) return `${e.key}: ${o.hlc} instead of ${e.hlc}`;
    if (JSON.stringify(o.value) !== JSON.stringify(e.value)) return `${e.key}: value differs`;
    bm.delete(e.key);
  }
  for (const e of bm.values()) return `extra ${e.key}@${e.hlc}`;
  return null;
}
