import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame } from '../codec';
import { isErrorCode } from '../errors';
import { encodeHlc } from '../hlc';
import type { Op } from '../model';
import { packOps } from '../op-pack';
import { CLOSE_CODES, type ClientMessage, PROTOCOL_VERSION, type WireLimits } from '../protocol';
import { validateClientMessage } from '../validate';
import { RawClient } from './raw-client';
import {
  eventually,
  httpGet,
  liveState,
  openReplica,
  type RelaySetup,
  type RelayUnderTest,
  relayEntries,
  uniq,
} from './relay-harness';

/** How long the fuzzer runs, and which run to replay. */
export interface RelayFuzzOptions {
  /** fast-check runs (each: fresh clients on a fresh bucket, a script of frames); default 200. */
  runs?: number;
  /** Replays a failure: the seed (and path) fast-check printed. */
  seed?: number;
  path?: string;
  /** Per-test timeout in milliseconds (default grows with `runs`). */
  timeoutMs?: number;
}

/** Close codes the relay documents (README: WebSocket close codes). */
const DOCUMENTED_CLOSES: ReadonlySet<number> = new Set([
  1000,
  1009,
  1012,
  1013,
  ...Object.values(CLOSE_CODES),
]);

const KEYS = ['a', 'b', 'k1', 'ü', '\uFFFD', '😀', '！'];
const INVALID_UTF8 = [
  [0xff],
  [0xed, 0xa0, 0x80],
  [0xc3, 0x41],
  [0xc0, 0xaf],
  [0xf4, 0x90, 0x80, 0x80],
  [0xe2, 0x82],
];

/** Values that are the wrong thing in almost any field. */
const arbWeird = fc.oneof(
  fc.constantFrom(
    Number.NaN,
    Number.POSITIVE_INFINITY,
    -1,
    0.5,
    2 ** 53 + 2,
    1e308,
    -(2 ** 63),
    '',
    'x'.repeat(600),
    null,
    true,
    [],
    {},
    { __proto__: 1 },
  ),
  fc.string({ maxLength: 8 }),
  fc.integer(),
  fc.double(),
  fc.nat({ max: 40 }).map((d) => {
    let v: unknown = 1;
    for (let i = 0; i < d * 3; i++) v = [v];
    return v;
  }),
);

type Part =
  | { kind: 'push'; ops: { key: string; del: boolean; value: unknown }[]; packed: boolean }
  | { kind: 'valid'; msg: 'sub' | 'unsub' | 'pageReq' | 'markerReply' | 'ping' | 'hello' | 'subAgain' }
  | { kind: 'field'; base: 'push' | 'sub' | 'pageReq' | 'op'; field: string; value: unknown }
  | { kind: 'unknownType'; type: string }
  | {
      kind: 'mutate';
      how: 'flip' | 'truncate' | 'utf8' | 'byte' | 'append';
      at: number;
      bits: number;
      bad: number;
      /** Mutate a push whose ops are packed (`op-pack.ts`) rather than tuples. */
      packed: boolean;
    }
  | { kind: 'bytes'; bytes: Uint8Array }
  | { kind: 'deep'; depth: number }
  | { kind: 'json'; text: string };

const arbValue = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom(null, 'v', { t: 'ü' }));
const arbPart: fc.Arbitrary<Part> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('push' as const),
      ops: fc.array(fc.record({ key: fc.constantFrom(...KEYS), del: fc.boolean(), value: arbValue }), {
        minLength: 1,
        maxLength: 3,
      }),
      packed: fc.boolean(),
    }),
  },
  fc.record({
    kind: fc.constant('valid' as const),
    msg: fc.constantFrom('sub', 'unsub', 'pageReq', 'markerReply', 'ping', 'hello', 'subAgain' as const),
  }),
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('field' as const),
      base: fc.constantFrom('push', 'sub', 'pageReq', 'op' as const),
      field: fc.constantFrom(
        'type',
        'bucket',
        'ops',
        'since',
        'limit',
        'reqId',
        'subId',
        'after',
        'key',
        'hlc',
        'origin',
        'originSeq',
        'kind',
        'value',
      ),
      value: arbWeird,
    }),
  },
  fc.record({
    kind: fc.constant('unknownType' as const),
    type: fc.constantFrom('launch', 'PUSH', '', 'welcome', 'deliver'),
  }),
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('mutate' as const),
      how: fc.constantFrom('flip', 'truncate', 'utf8', 'byte', 'append' as const),
      at: fc.nat(),
      bits: fc.integer({ min: 1, max: 255 }),
      bad: fc.nat({ max: INVALID_UTF8.length - 1 }),
      packed: fc.boolean(),
    }),
  },
  fc.record({ kind: fc.constant('bytes' as const), bytes: fc.uint8Array({ maxLength: 48 }) }),
  fc.record({ kind: fc.constant('deep' as const), depth: fc.constantFrom(100, 5_000, 60_000) }),
  fc.record({ kind: fc.constant('json' as const), text: fc.oneof(fc.json(), fc.string()) }),
);

/** One run: two clients' scripts on a fresh bucket, and a client that never says hello. */
const arbScript = fc.record({
  frames: fc.array(fc.record({ client: fc.nat({ max: 1 }), part: arbPart }), { minLength: 1, maxLength: 16 }),
  preHello: fc.option(arbPart, { nil: undefined }),
});

type Script = typeof arbScript extends fc.Arbitrary<infer T> ? T : never;

/** A client of a run: its socket and what it sent, so the relay's answers can be checked. */
class Fuzzed {
  seq = 0;
  counter = 0;
  subId = 0;
  /** Frames that the core's own decoder and validator refuse: each must get an error frame. */
  invalid = 0;
  /** Ops of frames that validate here: the only ops the relay may store. */
  readonly candidates: Op[] = [];

  constructor(
    readonly c: RawClient,
    readonly bucket: string,
    readonly limits: WireLimits,
  ) {}

  get id(): string {
    return this.c.replicaId;
  }

  op(key: string, del: boolean, value: unknown, originSeq = this.seq + 1): Record<string, unknown> {
    const hlc = encodeHlc(Date.now(), this.counter++ & 0xffff, this.id);
    return del
      ? { origin: this.id, originSeq, key, kind: 'del', hlc }
      : { origin: this.id, originSeq, key, kind: 'set', value, hlc };
  }

  /** The frame `part` stands for, as bytes or text. */
  frame(part: Part): Uint8Array | string {
    const b = this.bucket;
    const base = (): Record<string, unknown> => ({ type: 'push', bucket: b, ops: [this.op('k1', false, 1)] });
    switch (part.kind) {
      case 'push': {
        const ops = part.ops.map((o) => this.op(o.key, o.del, o.value, ++this.seq));
        return encodeFrame({ type: 'push', bucket: b, ops }, 'msgpack', { packOps: part.packed });
      }
      case 'valid': {
        const m: Record<string, Record<string, unknown>> = {
          sub: { type: 'sub', bucket: b, since: 0, flush: false, subId: ++this.subId },
          subAgain: { type: 'sub', bucket: b, since: 1, flush: true, subId: ++this.subId },
          unsub: { type: 'unsub', bucket: b },
          pageReq: { type: 'pageReq', bucket: b, reqId: 1, since: 0, limit: 5 },
          markerReply: { type: 'markerReply', bucket: b, flushId: 'f1', sent: this.seq },
          ping: { type: 'ping', id: 1 },
          hello: { type: 'hello', v: PROTOCOL_VERSION, replicaId: this.id },
        };
        return encodeFrame(m[part.msg]);
      }
      case 'field': {
        const msgs: Record<string, Record<string, unknown>> = {
          push: base(),
          sub: { type: 'sub', bucket: b, since: 0, flush: false, subId: 1 },
          pageReq: { type: 'pageReq', bucket: b, reqId: 2, since: 0, limit: 5 },
        };
        if (part.base === 'op') {
          const op = this.op('k1', false, 1);
          op[part.field] = part.value;
          return encodeFrame({ type: 'push', bucket: b, ops: [op] });
        }
        const m = { ...msgs[part.base], [part.field]: part.value };
        return encodeFrame(m);
      }
      case 'unknownType':
        return encodeFrame({ ...base(), type: part.type });
      case 'mutate': {
        if (part.packed && part.how === 'utf8') {
          // Invalid UTF-8 as the packed key `k1` (its length 2, then 6B 31), inside the binary field.
          const ops = packOps([this.op('k1', false, 1) as unknown as Op], false) as Uint8Array;
          const k = ops.findIndex((x, i) => x === 2 && ops[i + 1] === 0x6b && ops[i + 2] === 0x31);
          const bad = INVALID_UTF8[part.bad] as number[];
          const mutated = new Uint8Array([...ops.subarray(0, k), bad.length, ...bad, ...ops.subarray(k + 3)]);
          return encodeFrame({ type: 'push', bucket: b, ops: mutated });
        }
        const bytes = new Uint8Array(encodeFrame(base(), 'msgpack', { packOps: part.packed }));
        const at = part.at % bytes.length;
        if (part.how === 'truncate') return bytes.slice(0, at);
        if (part.how === 'append') return new Uint8Array([...bytes, part.bits]);
        if (part.how === 'flip') bytes[at] = (bytes[at] as number) ^ part.bits;
        else if (part.how === 'byte') bytes[at] = part.bits;
        else {
          // Invalid UTF-8 as the key: the fixstr `k1` (A2 6B 31), the one key every base frame has
          // (matched with its header, so a `k1` inside another string is never taken for it).
          const k = bytes.findIndex((x, i) => x === 0xa2 && bytes[i + 1] === 0x6b && bytes[i + 2] === 0x31);
          const bad = INVALID_UTF8[part.bad] as number[];
          return new Uint8Array([
            ...bytes.subarray(0, k),
            0xa0 + bad.length,
            ...bad,
            ...bytes.subarray(k + 3),
          ]);
        }
        return bytes;
      }
      case 'bytes':
        return part.bytes;
      case 'deep':
        return new Uint8Array([...new Array<number>(part.depth).fill(0x91), 0xc0]);
      case 'json':
        return part.text;
    }
  }

  /** Sends `part`, noting whether core's own decoder and validator accept it. */
  send(part: Part): void {
    const f = this.frame(part);
    const text = typeof f === 'string';
    let msg: ClientMessage | undefined;
    // Invalid UTF-8 by construction: the oracle must not be the decoder under test alone.
    if (part.kind === 'mutate' && part.how === 'utf8') {
      this.invalid++;
      this.c.send(f);
      return;
    }
    try {
      msg = validateClientMessage(
        decodeFrame(text ? new TextEncoder().encode(f) : f, text ? 'json' : 'msgpack'),
        this.limits,
      );
    } catch {
      this.invalid++;
    }
    if (msg?.type === 'push') this.candidates.push(...msg.ops);
    this.c.send(f);
  }
}

/** Waits until `c` answered a ping sent after everything else (replies come in order). */
async function settle(c: RawClient): Promise<void> {
  const id = 1e9 + Math.floor(Math.random() * 1e6);
  c.send({ type: 'ping', id });
  await c.next('pong', (m) => m.id === id);
}

async function oneRun(relay: RelayUnderTest, script: Script, bucket: string): Promise<void> {
  const clients: Fuzzed[] = [];
  for (let i = 0; i < 2; i++) {
    const sub = uniq('fz');
    const token = await relay.makeToken({ sub, read: ['*'], write: ['*'] });
    // One client reads delivers packed, the other as tuples.
    const { client, welcome } = await RawClient.open(relay, token, sub, { packOps: i === 0 });
    clients.push(new Fuzzed(client, bucket, welcome.limits));
  }
  let pre: RawClient | undefined;
  if (script.preHello !== undefined) {
    const sub = uniq('fz');
    pre = await RawClient.connect(relay, {
      token: await relay.makeToken({ sub, read: ['*'], write: ['*'] }),
      replicaId: sub,
    });
    pre.send(new Fuzzed(pre, bucket, (clients[0] as Fuzzed).limits).frame(script.preHello));
  }
  for (const { client, part } of script.frames) (clients[client] as Fuzzed).send(part);
  for (const f of clients) {
    await settle(f.c);
    // Every frame core refuses got an error frame with a documented code; the socket stays open.
    const errors = f.c.received.filter((m) => m.type === 'error');
    expect(errors.length, 'an error frame for every refused frame').toBeGreaterThanOrEqual(f.invalid);
    for (const e of errors) expect(isErrorCode(e.code), `documented code ${e.code}`).toBe(true);
    expect(f.c.malformed, 'frames from the relay that do not validate').toBe(0);
  }
  if (pre !== undefined) {
    // A first frame that is not a valid hello closes with a documented code after an error frame,
    // unless it was one (then the relay welcomed it).
    if (pre.received.some((m) => m.type === 'welcome')) pre.close();
    else {
      const closed = await pre.closed;
      expect(DOCUMENTED_CLOSES.has(closed.code), `documented close ${closed.code}`).toBe(true);
      const err = pre.received.find((m) => m.type === 'error');
      expect(err !== undefined && isErrorCode(err.code), 'an error frame before the close').toBe(true);
    }
  }
  // Nothing is stored but acked ops of frames that are valid.
  const reader = await relay.makeToken({ sub: uniq('fz'), read: ['*'] });
  await eventually(
    'every stored entry is an acked op',
    async () => {
      const stored = await relayEntries(relay, bucket, reader);
      return stored.every((e) =>
        clients.some((f) =>
          f.candidates.some((o) => o.key === e.key && o.hlc === e.hlc && acked(f, o.originSeq)),
        ),
      );
    },
    3_000,
  );
  for (const f of clients) f.c.close();
}

/** Whether the relay acked `originSeq` of `f`'s ops in its bucket without rejecting it. */
function acked(f: Fuzzed, originSeq: number): boolean {
  return f.c.received.some(
    (m) =>
      m.type === 'ack' &&
      m.bucket === f.bucket &&
      m.upTo >= originSeq &&
      !(m.rejected ?? []).some((r) => r.originSeq === originSeq),
  );
}

/**
 * A protocol fuzzer (fast-check) for any relay: each run opens two clients on a fresh bucket
 * and sends a script of frames, valid pushes mixed with mutations of valid frames (bit flips,
 * truncation, stray bytes, invalid UTF-8), fields of the wrong type or range (NaN, huge numbers,
 * deep nesting, long strings), unknown types, random bytes and JSON, and valid frames in the
 * wrong state (a second hello, a marker reply without a flush); sometimes a third client sends
 * such a frame instead of its hello. It checks that the relay answers every frame the core
 * refuses with an error frame of a documented code, closes only with documented codes, stores
 * nothing but acked ops of valid frames, stays healthy, and that real replicas still converge
 * with it afterwards. A failure prints fast-check's seed and path: pass them back as `seed` and
 * `path` to replay it.
 *
 * @example
 * ```ts
 * runRelayFuzzTests(setup, { runs: Number(process.env.MITTSYNC_FUZZ_RUNS ?? 60) });
 * ```
 */
export function runRelayFuzzTests(setup: RelaySetup, opts: RelayFuzzOptions = {}): void {
  const runs = opts.runs ?? 200;
  describe('relay protocol fuzzer', () => {
    it(
      `survives ${runs} runs of malformed and mutated frames, and replicas still converge`,
      async () => {
        const relay = await setup();
        const buckets: string[] = [];
        try {
          await fc.assert(
            fc.asyncProperty(arbScript, async (script) => {
              buckets.push(uniq('fz'));
              await oneRun(relay, script, buckets.at(-1) as string);
              const health = await fetch(`${relay.httpUrl}/healthz`);
              expect(health.status, 'healthz').toBe(200);
            }),
            {
              numRuns: runs,
              ...(opts.seed === undefined ? {} : { seed: opts.seed }),
              ...(opts.path === undefined ? {} : { path: opts.path }),
              endOnFailure: true,
            },
          );
          await converges(relay, buckets.slice(-3));
        } finally {
          await relay.close();
        }
      },
      opts.timeoutMs ?? 60_000 + runs * 1_000,
    );
  });
}

/**
 * Two real replicas join buckets the fuzzer wrote to and a fresh one, write to it and end equal
 * to each other and to the relay.
 */
async function converges(relay: RelayUnderTest, fuzzed: readonly string[]): Promise<void> {
  const bucket = uniq('fz-after');
  const a = await openReplica(relay);
  const b = await openReplica(relay);
  const token = await relay.makeToken({ sub: uniq('fz'), read: ['*'] });
  const same = async (bk: string): Promise<boolean> => {
    const want = JSON.stringify(liveState(await relayEntries(relay, bk, token)));
    const [ea, eb] = await Promise.all([a.scan(bk, {}), b.scan(bk, {})]);
    return JSON.stringify(liveState(ea)) === want && JSON.stringify(liveState(eb)) === want;
  };
  try {
    for (const bk of fuzzed) {
      await Promise.all([a.whenReady(bk), b.whenReady(bk)]);
      await eventually(`replicas equal the relay in fuzzed bucket ${bk}`, () => same(bk));
    }
    await Promise.all([a.whenReady(bucket), b.whenReady(bucket)]);
    for (let i = 0; i < 20; i++) {
      await a.put(bucket, `k${i % 7}`, { i, by: 'a' });
      await b.put(bucket, `k${i % 5}`, { i, by: 'b' }, i === 19 ? { ack: 'relay' } : undefined);
    }
    await a.put(bucket, 'last', 1, { ack: 'relay' });
    await eventually('replicas equal the relay', async () => {
      const n = liveState(await relayEntries(relay, bucket, token)).length;
      return n === 8 && (await same(bucket));
    });
    expect((await httpGet(relay, '/healthz')).status).toBe(200);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
}
