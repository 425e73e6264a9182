import {
  type Checksum,
  type ClientMessage,
  DEFAULT_LIMITS,
  MemoryReplicaStorage,
  PROTOCOL_VERSION,
  Replica,
  type SeqOp,
  type ServerMessage,
  type Transport,
  type TransportHandlers,
} from '@mittsync/core';
import { checksumReplace, emptyChecksum } from '@mittsync/core/model';
import type { Metric } from '../metric';

/**
 * A relay stand-in living in the same process: it answers the handshake and an empty join,
 * then lets the benchmark push `deliver` frames straight into the replica, so the figure is
 * the replica's own apply path (mitt, LWW against storage, checksum, commit) without sockets.
 */
class LoopbackRelay implements Transport {
  private h: TransportHandlers | null = null;
  connect(h: TransportHandlers): void {
    this.h = h;
    queueMicrotask(() => h.open());
  }
  send(msg: ClientMessage): void {
    const reply = (m: ServerMessage) => queueMicrotask(() => this.h?.message(m));
    if (msg.type === 'hello')
      reply({ type: 'welcome', v: PROTOCOL_VERSION, relayTime: Date.now(), limits: DEFAULT_LIMITS });
    else if (msg.type === 'sub') {
      reply({
        type: 'subscribed',
        bucket: msg.bucket,
        subId: msg.subId,
        epoch: 'e',
        from: 1,
        received: 0,
        sum: emptyChecksum(),
        splits: [],
        flushId: 'f',
      });
      reply({ type: 'flushed', bucket: msg.bucket, flushId: 'f', seq: 0, covered: [], missed: [] });
    } else if (msg.type === 'pageReq')
      reply({ type: 'page', bucket: msg.bucket, reqId: msg.reqId, entries: [], next: null });
  }
  close(): void {}
  deliver(m: ServerMessage): void {
    this.h?.message(m);
  }
}

const H = (wall: number, counter: number, node: string) =>
  wall.toString(16).padStart(12, '0') + counter.toString(16).padStart(4, '0') + node;

/**
 * `core_apply_ops_s`: remote LWW set ops delivered on the live stream and applied in memory
 * (mitt -> LWW against storage -> checksum -> commit), 1,000 per frame, over 100,000 keys.
 */
async function applyOpsPerSecond(quick: boolean): Promise<number> {
  const keys = 100_000;
  const total = quick ? 500_000 : 2_000_000;
  const batch = 1_000;
  const relay = new LoopbackRelay();
  const replica = await Replica.open({
    storage: new MemoryReplicaStorage(),
    transport: relay,
    replicaId: 'rbench',
  });
  await replica.openBucket('bench');
  await replica.whenReady('bench');
  const base = Date.now();
  // Frames carry the relay's checksum after their last op, as a real relay's do (the replica
  // verifies it when idle), so build them with a running model of the relay's state.
  const frames: { ops: SeqOp[]; sum: Checksum }[] = [];
  const model = new Map<string, string>();
  const sum = emptyChecksum();
  for (let i = 0; i < total; i += batch) {
    const ops: SeqOp[] = [];
    for (let j = i; j < i + batch; j++) {
      const key = `key${(j * 7919) % keys}`;
      const hlc = H(base + Math.floor(j / 50), j % 50, 'rW');
      const prev = model.get(key);
      checksumReplace(sum, key, prev === undefined ? undefined : { hlc: prev }, { hlc });
      model.set(key, hlc);
      ops.push({
        origin: 'rW',
        originSeq: j + 1,
        key,
        kind: 'set',
        value: { n: j, s: 'payload-of-forty-bytes-0123456789abcdef' },
        hlc,
        seq: j + 1,
      });
    }
    frames.push({ ops, sum: { ...sum } });
  }
  const waitFor = (seq: number) =>
    new Promise<void>((resolve) => {
      const check = () =>
        (replica.status('bench')?.checkpoint ?? 0) >= seq ? resolve() : setTimeout(check, 1);
      check();
    });
  const warm = 50;
  for (const f of frames.slice(0, warm)) relay.deliver({ type: 'deliver', bucket: 'bench', ...f });
  await waitFor(warm * batch);
  const started = performance.now();
  for (const f of frames.slice(warm)) relay.deliver({ type: 'deliver', bucket: 'bench', ...f });
  await waitFor(total);
  const secs = (performance.now() - started) / 1000;
  const status = replica.status('bench');
  await replica.close();
  if (status?.lastError)
    throw new Error(`replica reported ${status.lastError.code}: ${status.lastError.message}`);
  if ((status?.verified ?? 0) === 0)
    throw new Error('the replica never verified its checksum against the frames');
  return Math.round((total - warm * batch) / secs);
}

export const coreMetrics: Metric[] = [
  {
    name: 'core_apply_ops_s',
    unit: 'ops/s',
    description:
      'remote LWW set ops delivered on the live stream and applied by a Replica on memory storage, 1,000 per frame, 100k keys; --quick: 0.5M ops instead of 2M',
    target: { value: 1_000_000, better: 'higher' },
    run: ({ quick }) => applyOpsPerSecond(quick),
  },
];
