import { describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame, PACKED_OPS, pageByColumns, type WireFormat } from './codec';
import type { Env } from './env';
import type { MittsyncError } from './errors';
import { BucketHost, type HostConnection } from './host';
import { MemoryHostStore } from './host-store';
import { MemoryReplicaStorage } from './memory-storage';
import {
  type ClientMessage,
  type HelloMsg,
  PROTOCOL_VERSION,
  type PushMsg,
  type ServerMessage,
  type SubMsg,
  type WelcomeMsg,
} from './protocol';
import { Replica } from './replica';
import { Scheduler } from './sim/scheduler';
import { localOp } from './testing/sync-fakes';
import { DEFAULT_LIMITS, validateClientMessage } from './validate';
import { msgpack } from './value-codec';
import { jwtExpiresAt, type WebSocketLike, WebSocketTransport } from './ws-transport';

const b64url = (x: unknown): string =>
  (globalThis as unknown as { btoa: (s: string) => string })
    .btoa(JSON.stringify(x))
    .replace(/\+/g, '-')
    .replace(/\//g, '_')
    .replace(/=+$/, '');

/** An unsigned JWT-shaped token expiring at `expS` (seconds): the transport never verifies. */
const jwt = (sub: string, expS: number): string =>
  `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url({ sub, exp: expS })}.c2ln`;

class FakeSocket implements WebSocketLike {
  binaryType = 'blob';
  readyState = 0;
  protocol = '';
  readonly sent: unknown[] = [];
  /** How the transport closed it, if it did. */
  closedWith: { code: number | undefined; reason: string | undefined } | undefined;
  onopen: ((ev: unknown) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;

  constructor(
    readonly url: string,
    readonly init: { headers: Record<string, string>; protocols: string[] },
  ) {}

  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }

  /** Delivers `msg` as a binary frame; returns its length. */
  receive(msg: ServerMessage): number {
    // A copy: encodeFrame may hand out a view of a larger (Node Buffer) pool.
    const frame = new Uint8Array(encodeFrame(msg));
    this.onmessage?.({ data: frame.buffer });
    return frame.byteLength;
  }

  /** Delivers `msg` as a JSON text frame; returns its UTF-8 length. */
  receiveText(msg: ServerMessage): number {
    const text = new TextDecoder().decode(encodeFrame(msg, 'json'));
    this.onmessage?.({ data: text });
    return new TextEncoder().encode(text).byteLength;
  }

  /** Every frame sent, as it went on the wire. */
  readonly raw: (Uint8Array | string)[] = [];

  send(data: Uint8Array | string): void {
    this.raw.push(data);
    this.sent.push(
      typeof data === 'string' ? decodeFrame(new TextEncoder().encode(data), 'json') : decodeFrame(data),
    );
  }

  close(code?: number, reason?: string): void {
    this.closedWith ??= { code, reason };
    this.readyState = 3;
  }

  /** The relay or the network ends the socket. */
  drop(code: number, reason = ''): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  /** Frames sent of one type. */
  sentOf(type: string): unknown[] {
    return this.sent.filter((m) => (m as { type: string }).type === type);
  }
}

/** Virtual time: timers run when `advance` passes them. */
function fakeEnv(start: number) {
  let now = start;
  let timers: { at: number; fn: () => void; id: number }[] = [];
  let ids = 0;
  const env: Env = {
    now: () => now,
    setTimeout: (fn, ms) => {
      timers.push({ at: now + ms, fn, id: ++ids });
      return ids;
    },
    clearTimeout: (id) => {
      timers = timers.filter((t) => t.id !== id);
    },
    random: () => 0.5,
  };
  const advance = (ms: number) => {
    now += ms;
    for (const t of timers.filter((x) => x.at <= now)) {
      timers = timers.filter((x) => x !== t);
      t.fn();
    }
  };
  return { env, advance };
}

const START = Date.UTC(2026, 0, 1);
const START_S = START / 1000;

const settle = () => new Promise((r) => setTimeout(r, 0));

function setup(opts: {
  tokenIn?: 'subprotocol' | 'header';
  token: string | (() => string | Promise<string>);
  format?: WireFormat;
}) {
  const sockets: FakeSocket[] = [];
  const { env, advance } = fakeEnv(START);
  const messages: ServerMessage[] = [];
  const closes: { code?: number; reason?: string }[] = [];
  const protocolErrors: MittsyncError[] = [];
  const transport = new WebSocketTransport({
    url: 'ws://relay.test/v1/sync',
    token: opts.token,
    ...(opts.tokenIn === undefined ? {} : { tokenIn: opts.tokenIn }),
    ...(opts.format === undefined ? {} : { format: opts.format }),
    env,
    createSocket: (url, init) => {
      const s = new FakeSocket(url, init);
      sockets.push(s);
      return s;
    },
    onProtocolError: (e) => protocolErrors.push(e),
  });
  const connect = () =>
    transport.connect({
      open: () => undefined,
      message: (m) => messages.push(m),
      close: (i) => closes.push(i),
    });
  connect();
  return { transport, sockets, messages, closes, protocolErrors, advance, connect };
}

describe('WebSocketTransport', () => {
  it('offers the token in the mittsync.bearer subprotocol by default, never in the URL', async () => {
    const token = jwt('rA', 2_000_000_000);
    const { sockets } = setup({ token });
    await settle();
    const s = sockets[0] as FakeSocket;
    expect(s.url).toBe('ws://relay.test/v1/sync');
    expect(s.init.protocols).toEqual(['mittsync.v1', `mittsync.bearer.${token}`]);
    expect(s.init.headers).toEqual({});
  });

  it('sends the token in the Authorization header with tokenIn "header", offering mittsync.v1 alone', async () => {
    const token = jwt('rA', 2_000_000_000);
    const { sockets } = setup({ token, tokenIn: 'header' });
    await settle();
    const s = sockets[0] as FakeSocket;
    expect(s.init.headers).toEqual({ authorization: `Bearer ${token}` });
    expect(s.init.protocols).toEqual(['mittsync.v1']);
  });

  it('sends a fresh token in an auth frame before a JWT expires, and keeps authed to itself', async () => {
    let n = 0;
    const { sockets, messages, advance } = setup({ token: () => jwt('rA', START_S + 600 * ++n) });
    await settle();
    const s = sockets[0] as FakeSocket;
    s.open();
    expect(s.sent).toEqual([]);
    advance(530_000); // 70 s before the first token's expiry: not yet
    await settle();
    expect(s.sent).toEqual([]);
    advance(11_000); // within the last minute
    await settle();
    expect(s.sent).toEqual([{ type: 'auth', token: jwt('rA', START_S + 1200) }]);
    s.receive({ type: 'authed', expiresAt: (START_S + 1200) * 1000 });
    expect(messages).toEqual([]);
    advance(600_000); // and again before the second one expires
    await settle();
    expect(s.sent).toHaveLength(2);
  });

  it('refuses a token a subprotocol cannot carry instead of opening a socket', async () => {
    const closes: { reason?: string }[] = [];
    const sockets: FakeSocket[] = [];
    const t = new WebSocketTransport({
      url: 'ws://relay.test/v1/sync',
      token: 'opaque token/with=padding',
      createSocket: (url, init) => {
        const s = new FakeSocket(url, init);
        sockets.push(s);
        return s;
      },
    });
    t.connect({ open: () => undefined, message: () => undefined, close: (i) => closes.push(i) });
    await settle();
    expect(sockets).toEqual([]);
    expect(closes[0]?.reason).toMatch(/subprotocol/);
  });

  it('reads the expiry of a JWT without verifying it, and nothing from other tokens', () => {
    expect(jwtExpiresAt(jwt('a', 1234))).toBe(1_234_000);
    expect(jwtExpiresAt('opaque')).toBeUndefined();
    expect(jwtExpiresAt('a.!!!.c')).toBeUndefined();
  });
});

const SYNC_URL = 'ws://relay.test/v1/sync';
const FAR_S = START_S + 3600;
const HELLO: HelloMsg = { type: 'hello', v: PROTOCOL_VERSION, replicaId: 'rA' };
/** The hello as a binary socket carries it: the link offers to read packed ops. */
const HELLO_WIRE = { ...HELLO, packOps: PACKED_OPS };

const welcome = (extra: Partial<WelcomeMsg> = {}): WelcomeMsg => ({
  type: 'welcome',
  v: PROTOCOL_VERSION,
  relayTime: START,
  limits: DEFAULT_LIMITS,
  ...extra,
});

const sub = (bucket: string, subId = 1): SubMsg => ({ type: 'sub', bucket, since: 0, flush: true, subId });

/** An error frame of about `n` bytes: filler for the byte counts. */
const filler = (n: number, text = 'x'): ServerMessage => ({
  type: 'error',
  code: 'INTERNAL',
  message: text.repeat(n),
});

/** A transport whose root socket was welcomed with `socketPerBucket` (the replica said hello). */
async function bucketMode(
  opts: { token?: string | (() => string | Promise<string>); rootWelcome?: Partial<WelcomeMsg> } = {},
) {
  const t = setup({ token: opts.token ?? jwt('rA', FAR_S) });
  await settle();
  const root = t.sockets[0] as FakeSocket;
  root.open();
  t.transport.send(HELLO);
  root.receive(welcome({ socketPerBucket: true, ...opts.rootWelcome }));
  /** The socket opened at `url`, after the token lookups settled. */
  const socketAt = async (url: string): Promise<FakeSocket> => {
    await settle();
    const s = t.sockets.find((x) => x.url === url && x.closedWith === undefined && x.readyState !== 3);
    if (s === undefined) throw new Error(`no socket at ${url}`);
    return s;
  };
  /** Sends `sub` for `bucket`, then opens and welcomes its socket. */
  const subscribed = async (bucket: string, w: Partial<WelcomeMsg> = {}): Promise<FakeSocket> => {
    t.transport.send(sub(bucket));
    const s = await socketAt(`${SYNC_URL}/${encodeURIComponent(bucket)}`);
    s.open();
    s.receive(welcome(w));
    return s;
  };
  return { ...t, root, socketAt, subscribed };
}

describe('WebSocketTransport on a relay that carries every bucket on one socket', () => {
  it('keeps the root socket as the connection: hello, welcome and bucket frames on it alone', async () => {
    const { sockets, transport, messages, closes } = setup({ token: jwt('rA', FAR_S) });
    await settle();
    const root = sockets[0] as FakeSocket;
    root.open();
    transport.send(HELLO);
    root.receive(welcome());
    transport.send(sub('team:x/y'));
    transport.send({ type: 'ping', id: 1 });
    await settle();
    expect(sockets).toHaveLength(1);
    expect(root.sent).toEqual([HELLO_WIRE, sub('team:x/y'), { type: 'ping', id: 1 }]);
    expect(messages).toEqual([welcome()]);
    expect(root.closedWith).toBeUndefined();
    root.drop(1012, 'restarting');
    expect(closes).toEqual([{ code: 1012, reason: 'restarting' }]);
  });
});

describe('WebSocketTransport on a relay with a socket per bucket', () => {
  it('passes the root welcome up, then closes the root socket with 1000 without ending the connection', async () => {
    const { root, messages, closes } = await bucketMode();
    expect(messages).toEqual([welcome({ socketPerBucket: true })]);
    expect(root.closedWith?.code).toBe(1000);
    root.drop(1000);
    expect(closes).toEqual([]);
  });

  it("opens a bucket's socket at <url>/<encoded bucket> on its first frame, with the same token", async () => {
    const token = jwt('rA', FAR_S);
    const { transport, sockets, socketAt } = await bucketMode({ token });
    expect(sockets).toHaveLength(1);
    transport.send(sub('team:x/y'));
    const s = await socketAt('ws://relay.test/v1/sync/team%3Ax%2Fy');
    expect(s.init.protocols).toEqual(['mittsync.v1', `mittsync.bearer.${token}`]);
    expect(sockets).toHaveLength(2);
  });

  it('says hello on a bucket socket and holds frames until its welcome, which the replica never sees', async () => {
    const { transport, socketAt, messages } = await bucketMode();
    const push: PushMsg = { type: 'push', bucket: 'b', ops: [localOp(1, 'k')] };
    transport.send(sub('b'));
    transport.send(push);
    const s = await socketAt(`${SYNC_URL}/b`);
    transport.send({ type: 'pageReq', bucket: 'b', reqId: 4, since: 0, limit: 10 });
    s.open();
    expect(s.sent).toEqual([HELLO_WIRE]);
    s.receive(welcome({ relayTime: START + 1 }));
    expect(s.sent).toEqual([
      HELLO_WIRE,
      sub('b'),
      push,
      { type: 'pageReq', bucket: 'b', reqId: 4, since: 0, limit: 10 },
    ]);
    transport.send({ type: 'markerReply', bucket: 'b', flushId: 'f', sent: 1 });
    expect(s.sent.at(-1)).toEqual({ type: 'markerReply', bucket: 'b', flushId: 'f', sent: 1 });
    expect(messages).toEqual([welcome({ socketPerBucket: true })]);
  });

  it("holds at most two of the relay's largest frames for a welcome, dropping what comes past that", async () => {
    const limits = { ...DEFAULT_LIMITS, maxFrameBytes: 1024 };
    const { transport, socketAt } = await bucketMode({ rootWelcome: { limits } });
    const push = (n: number): PushMsg => ({
      type: 'push',
      bucket: 'b',
      ops: [localOp(n, 'k', 'v'.repeat(700))],
    });
    transport.send(sub('b'));
    for (let n = 1; n <= 3; n++) transport.send(push(n));
    const s = await socketAt(`${SYNC_URL}/b`);
    s.open();
    s.receive(welcome());
    expect(s.sent).toEqual([HELLO_WIRE, sub('b'), push(1), push(2)]);
    transport.send(push(3)); // welcomed: sent as it comes
    expect(s.sent.at(-1)).toEqual(push(3));
  });

  it("passes a bucket socket's frames up unchanged, an error without a bucket too", async () => {
    const { subscribed, messages } = await bucketMode();
    const s = await subscribed('b');
    const ack: ServerMessage = { type: 'ack', bucket: 'b', upTo: 3, seq: 9 };
    const fatal: ServerMessage = { type: 'error', code: 'RATE_LIMITED', message: 'slow down' };
    s.receive(ack);
    s.receive(fatal);
    expect(messages.slice(1)).toEqual([ack, fatal]);
  });

  it("sends unsub on the bucket's socket and closes that socket alone; a later sub opens a new one", async () => {
    const { transport, subscribed, socketAt, closes } = await bucketMode();
    const a = await subscribed('a');
    const b = await subscribed('b');
    transport.send({ type: 'unsub', bucket: 'a' });
    expect(a.sent.at(-1)).toEqual({ type: 'unsub', bucket: 'a' });
    expect(a.closedWith?.code).toBe(1000);
    expect(b.closedWith).toBeUndefined();
    a.drop(1000);
    expect(closes).toEqual([]);
    transport.send(sub('a', 2));
    const again = await socketAt(`${SYNC_URL}/a`);
    expect(again).not.toBe(a);
    again.open();
    again.receive(welcome());
    expect(again.sent).toEqual([HELLO_WIRE, sub('a', 2)]);
  });

  it('answers a ping with one pong merging every bucket socket, once all of them answered', async () => {
    const { transport, subscribed, socketAt, messages } = await bucketMode();
    const a = await subscribed('a');
    const b = await subscribed('b');
    const c = await subscribed('c');
    transport.send(sub('d')); // still opening: not asked
    const d = await socketAt(`${SYNC_URL}/d`);
    transport.send({ type: 'ping', id: 7 });
    for (const s of [a, b, c]) expect(s.sentOf('ping')).toEqual([{ type: 'ping', id: 7 }]);
    expect(d.sent).toEqual([]);
    a.receive({ type: 'pong', id: 7, heads: { a: 3 } });
    b.receive({ type: 'pong', id: 7, heads: { b: 5 } });
    expect(messages.filter((m) => m.type === 'pong')).toEqual([]);
    // A socket closed by an unsub is not waited for.
    transport.send({ type: 'unsub', bucket: 'c' });
    expect(messages.filter((m) => m.type === 'pong')).toEqual([
      { type: 'pong', id: 7, heads: { a: 3, b: 5 } },
    ]);
    a.receive({ type: 'pong', id: 7, heads: { a: 3 } }); // a stray repeat is dropped
    expect(messages.filter((m) => m.type === 'pong')).toHaveLength(1);
  });

  it('answers a ping at once, with no heads, when no bucket socket is open', async () => {
    const { transport, messages } = await bucketMode();
    transport.send({ type: 'ping', id: 1 });
    await settle();
    expect(messages.slice(1)).toEqual([{ type: 'pong', id: 1, heads: {} }]);
  });

  it('sends auth on every bucket socket, and opens later ones with that token', async () => {
    const { transport, subscribed, socketAt, messages } = await bucketMode();
    const a = await subscribed('a');
    const b = await subscribed('b');
    transport.send(sub('c'));
    const c = await socketAt(`${SYNC_URL}/c`);
    const fresh = jwt('rA', FAR_S + 3600);
    transport.send({ type: 'auth', token: fresh });
    expect(a.sent.at(-1)).toEqual({ type: 'auth', token: fresh });
    expect(b.sent.at(-1)).toEqual({ type: 'auth', token: fresh });
    c.open();
    c.receive(welcome());
    expect(c.sent).toEqual([HELLO_WIRE, sub('c'), { type: 'auth', token: fresh }]);
    a.receive({ type: 'authed', expiresAt: (FAR_S + 3600) * 1000 });
    b.receive({ type: 'error', code: 'UNAUTHENTICATED', message: 'bad token' });
    expect(messages.slice(1)).toEqual([{ type: 'error', code: 'UNAUTHENTICATED', message: 'bad token' }]);
    transport.send(sub('d'));
    expect((await socketAt(`${SYNC_URL}/d`)).init.protocols).toEqual([
      'mittsync.v1',
      `mittsync.bearer.${fresh}`,
    ]);
  });

  it('reuses the last token for a bucket socket while it has over a minute left, and one fetch serves all', async () => {
    let calls = 0;
    // Tokens good for an hour: every bucket socket reuses the root's.
    const long = await bucketMode({ token: () => jwt('rA', START_S + 3600 + ++calls) });
    long.transport.send(sub('a'));
    long.transport.send(sub('b'));
    await settle();
    expect(calls).toBe(1);
    expect(long.sockets.slice(1).map((s) => s.init.protocols[1])).toEqual([
      `mittsync.bearer.${jwt('rA', START_S + 3601)}`,
      `mittsync.bearer.${jwt('rA', START_S + 3601)}`,
    ]);
    // Tokens good for 50 s: the next buckets need a fresh one, fetched once for both.
    calls = 0;
    const short = await bucketMode({ token: () => jwt('rA', START_S + 50 + ++calls) });
    short.transport.send(sub('a'));
    short.transport.send(sub('b'));
    await settle();
    expect(calls).toBe(2);
    expect(short.sockets.slice(1).map((s) => s.init.protocols[1])).toEqual([
      `mittsync.bearer.${jwt('rA', START_S + 52)}`,
      `mittsync.bearer.${jwt('rA', START_S + 52)}`,
    ]);
  });

  it('refreshes the token on every bucket socket before it expires', async () => {
    let n = 0;
    const { subscribed, advance } = await bucketMode({ token: () => jwt('rA', START_S + 600 * ++n) });
    const a = await subscribed('a');
    const b = await subscribed('b');
    advance(541_000);
    await settle();
    expect(a.sentOf('auth')).toEqual([{ type: 'auth', token: jwt('rA', START_S + 1200) }]);
    expect(b.sentOf('auth')).toEqual([{ type: 'auth', token: jwt('rA', START_S + 1200) }]);
  });

  it('ends the connection once when a bucket socket drops, with its code, closing the others', async () => {
    const { transport, subscribed, socketAt, closes, messages } = await bucketMode();
    const a = await subscribed('a');
    const b = await subscribed('b');
    transport.send(sub('c'));
    const c = await socketAt(`${SYNC_URL}/c`);
    b.drop(4002, 'token expired');
    expect(closes).toEqual([{ code: 4002, reason: 'token expired' }]);
    expect(a.closedWith?.code).toBe(1000);
    expect(c.closedWith?.code).toBe(1000);
    a.drop(1006);
    c.drop(1006);
    a.receive({ type: 'ack', bucket: 'a', upTo: 1 });
    transport.send(sub('e'));
    await settle();
    expect(closes).toHaveLength(1);
    expect(messages).toHaveLength(1);
    expect(a.sent.at(-1)).toEqual(sub('a'));
  });

  it('ends the connection when a bucket socket fails to open, or its token cannot be had', async () => {
    const drops = await bucketMode();
    drops.transport.send(sub('a'));
    (await drops.socketAt(`${SYNC_URL}/a`)).drop(1006);
    expect(drops.closes).toEqual([{ code: 1006, reason: '' }]);

    let calls = 0;
    const refused = await bucketMode({
      token: () => (++calls === 1 ? jwt('rA', START_S + 30) : Promise.reject(new Error('offline'))),
    });
    refused.transport.send(sub('a'));
    await settle();
    expect(refused.sockets).toHaveLength(1);
    expect(refused.closes).toEqual([{ reason: 'could not get a token: offline' }]);
  });

  it('closes a bucket socket that sends a malformed frame, and its close ends the connection', async () => {
    const { subscribed, closes, protocolErrors } = await bucketMode();
    const a = await subscribed('a');
    const b = await subscribed('b');
    a.onmessage?.({ data: new Uint8Array([0xc1]).buffer });
    expect(protocolErrors).toHaveLength(1);
    expect(a.closedWith?.code).toBe(4000);
    a.drop(4000, 'malformed frame from relay');
    expect(closes).toEqual([{ code: 4000, reason: 'malformed frame from relay' }]);
    expect(b.closedWith?.code).toBe(1000);
  });

  it('closes every socket on close(), and the next connection detects the mode anew', async () => {
    const { transport, subscribed, socketAt, sockets, closes, connect } = await bucketMode();
    const a = await subscribed('a');
    transport.send(sub('b'));
    const b = await socketAt(`${SYNC_URL}/b`);
    transport.close();
    expect(closes).toEqual([{ code: 1000, reason: 'client closed' }]);
    expect([a.closedWith?.code, b.closedWith?.code]).toEqual([1000, 1000]);
    connect();
    await settle();
    const root = sockets.at(-1) as FakeSocket;
    expect(root.url).toBe(SYNC_URL);
    root.open();
    transport.send(HELLO);
    root.receive(welcome());
    transport.send(sub('a', 3));
    await settle();
    expect(root.sent).toEqual([HELLO_WIRE, sub('a', 3)]);
    expect(root.closedWith).toBeUndefined();
    expect(sockets).toHaveLength(4);
  });
});

describe('WebSocketTransport flow reports (recv)', () => {
  /** The recv frames a socket should have sent after frames of these sizes, every `every` bytes. */
  const expectedReports = (sizes: number[], every: number) => {
    const out: unknown[] = [];
    let total = 0;
    let last = 0;
    for (const n of sizes) {
      total += n;
      if (total - last >= every) {
        out.push({ type: 'recv', bytes: total });
        last = total;
      }
    }
    return out;
  };

  it('reports the exact bytes of binary frames on the root socket, welcome included', async () => {
    const { sockets, transport } = setup({ token: jwt('rA', FAR_S) });
    await settle();
    const root = sockets[0] as FakeSocket;
    root.open();
    transport.send(HELLO);
    const sizes = [root.receive(welcome({ recvEvery: 1024 }))];
    for (const n of [300, 500, 90, 700, 1500, 10, 2000]) sizes.push(root.receive(filler(n)));
    const want = expectedReports(sizes, 1024);
    expect(want.length).toBeGreaterThanOrEqual(3);
    expect(root.sentOf('recv')).toEqual(want);
    expect((want.at(-1) as { bytes: number }).bytes).toBe(sizes.reduce((a, b) => a + b, 0));
  });

  it('counts text frames by their UTF-8 length', async () => {
    const { sockets, transport } = setup({ token: jwt('rA', FAR_S), format: 'json' });
    await settle();
    const root = sockets[0] as FakeSocket;
    root.open();
    transport.send(HELLO);
    const frames = [welcome({ recvEvery: 1024 }), ...[40, 100, 7, 250].map((n) => filler(n, 'ü€😀'))];
    const sizes = frames.map((f) => root.receiveText(f));
    const units = frames.map((f) => new TextDecoder().decode(encodeFrame(f, 'json')).length);
    const want = expectedReports(sizes, 1024);
    expect(want).not.toEqual(expectedReports(units, 1024)); // UTF-16 units would count wrong
    expect(want.length).toBeGreaterThanOrEqual(2);
    expect(root.sentOf('recv')).toEqual(want);
  });

  it("reports on each bucket socket by its own count and its own welcome's recvEvery", async () => {
    const { subscribed } = await bucketMode({ rootWelcome: { recvEvery: 1024 } });
    const a = await subscribed('a', { recvEvery: 2048 });
    const b = await subscribed('b');
    const aSizes = [encodeFrame(welcome({ recvEvery: 2048 })).byteLength];
    for (const n of [900, 900, 900, 900, 3000]) {
      aSizes.push(a.receive(filler(n)));
      b.receive(filler(n));
    }
    expect(a.sentOf('recv')).toEqual(expectedReports(aSizes, 2048));
    expect(a.sentOf('recv').length).toBeGreaterThanOrEqual(2);
    expect(b.sentOf('recv')).toEqual([]);
  });

  it('sends no recv when the welcome has no recvEvery', async () => {
    const { sockets, transport } = setup({ token: jwt('rA', FAR_S) });
    await settle();
    const root = sockets[0] as FakeSocket;
    root.open();
    transport.send(HELLO);
    root.receive(welcome());
    for (let i = 0; i < 20; i++) root.receive(filler(1000));
    expect(root.sentOf('recv')).toEqual([]);
  });
});

/**
 * An edge relay in miniature, on virtual time: a lobby at the sync URL that welcomes with
 * `socketPerBucket`, and one BucketHost per bucket behind `<url>/<bucket>`, as the Durable
 * Objects are. Every frame goes through the real codec and validators.
 */
class EdgeRelay {
  static readonly URL = 'wss://edge.test/v1/sync';
  readonly hosts = new Map<string, BucketHost>();
  readonly sockets: EdgeSocket[] = [];
  /** Frames a correct client never sends: wrong socket, before hello. */
  readonly violations: string[] = [];
  private nextId = 1;

  constructor(
    readonly sched: Scheduler,
    readonly env: Env,
  ) {}

  createSocket = (url: string): WebSocketLike => {
    const bucket =
      url === EdgeRelay.URL ? undefined : decodeURIComponent(url.slice(EdgeRelay.URL.length + 1));
    const s = new EdgeSocket(this, url, bucket, `s${this.nextId++}`);
    this.sockets.push(s);
    return s;
  };

  host(bucket: string): BucketHost {
    let h = this.hosts.get(bucket);
    if (h === undefined) {
      h = new BucketHost({ bucket, store: new MemoryHostStore(), env: this.env, flushTimeoutMs: 500 });
      this.hosts.set(bucket, h);
    }
    return h;
  }

  handle(s: EdgeSocket, msg: ClientMessage): void {
    if (s.replicaId === undefined) {
      if (msg.type !== 'hello') {
        this.violations.push(`${msg.type} before hello`);
        return;
      }
      s.replicaId = msg.replicaId;
      s.deliver({
        type: 'welcome',
        v: PROTOCOL_VERSION,
        relayTime: this.env.now(),
        limits: DEFAULT_LIMITS,
        ...(s.bucket === undefined ? { socketPerBucket: true } : { recvEvery: 1024 }),
      });
      return;
    }
    if (msg.type === 'recv') {
      s.reports.push(msg.bytes);
      return;
    }
    if (msg.type === 'auth') {
      s.deliver({ type: 'authed', expiresAt: this.env.now() + 3_600_000 });
      return;
    }
    if (s.bucket === undefined) {
      if (msg.type === 'ping') s.deliver({ type: 'pong', id: msg.id, heads: {} });
      else this.violations.push(`${msg.type} on the lobby`);
      return;
    }
    const host = this.host(s.bucket);
    const conn = s.conn();
    if (msg.type === 'ping') {
      s.deliver({
        type: 'pong',
        id: msg.id,
        heads: host.isSubscribed(conn) ? { [s.bucket]: host.state.head } : {},
      });
      return;
    }
    if (msg.type === 'hello') return;
    if (msg.bucket !== s.bucket) {
      this.violations.push(`${msg.type} for ${msg.bucket} on the socket of ${s.bucket}`);
      return;
    }
    switch (msg.type) {
      case 'sub':
        host.subscribe(conn, msg);
        return;
      case 'unsub':
        host.unsubscribe(conn);
        return;
      case 'push':
        host.push(s.replicaId, msg, conn);
        return;
      case 'pageReq': {
        const page = host.page(msg);
        s.deliver(msg.cols === true && page.type === 'page' ? pageByColumns(page) : page);
        return;
      }
      case 'markerReply':
        host.markerReply(conn, msg);
        return;
    }
  }
}

class EdgeSocket implements WebSocketLike {
  binaryType = 'blob';
  readyState = 0;
  readonly protocol = 'mittsync.v1';
  onopen: ((ev: unknown) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  replicaId: string | undefined;
  closedWith: number | undefined;
  /** Bytes sent to the client after each frame, and what it reported having received. */
  readonly sentTotals: number[] = [];
  readonly reports: number[] = [];
  private hostConn: HostConnection | undefined;

  constructor(
    private readonly relay: EdgeRelay,
    readonly url: string,
    readonly bucket: string | undefined,
    private readonly id: string,
  ) {
    relay.sched.setTimeout(() => {
      if (this.readyState !== 0) return;
      this.readyState = 1;
      this.onopen?.({});
    }, 1);
  }

  conn(): HostConnection {
    this.hostConn ??= {
      id: this.id,
      replicaId: this.replicaId as string,
      canWrite: true,
      send: (m) => this.deliver(m),
    };
    return this.hostConn;
  }

  deliver(msg: ServerMessage): void {
    if (this.readyState !== 1) return;
    const frame = new Uint8Array(encodeFrame(msg));
    this.sentTotals.push((this.sentTotals.at(-1) ?? 0) + frame.byteLength);
    this.relay.sched.setTimeout(() => {
      if (this.readyState === 1) this.onmessage?.({ data: frame.buffer });
    }, 1);
  }

  send(data: Uint8Array | string): void {
    if (this.readyState !== 1) return;
    const msg = validateClientMessage(decodeFrame(data as Uint8Array));
    this.relay.sched.setTimeout(() => {
      if (this.readyState === 1) this.relay.handle(this, msg);
    }, 1);
  }

  close(code?: number): void {
    if (this.readyState >= 2) return;
    this.readyState = 3;
    this.closedWith = code;
    if (this.bucket !== undefined && this.hostConn !== undefined) {
      this.relay.hosts.get(this.bucket)?.unsubscribe(this.hostConn);
    }
    this.relay.sched.setTimeout(() => this.onclose?.({ code: code ?? 1005, reason: '' }), 1);
  }
}

describe('WebSocketTransport under a real Replica', () => {
  it('syncs two replicas through an edge relay with a socket per bucket', async () => {
    const sched = new Scheduler();
    const env: Env = {
      now: () => START + sched.now,
      setTimeout: (fn, ms) => sched.setTimeout(fn, ms),
      clearTimeout: (h) => sched.clearTimeout(h),
      random: () => 0.5,
    };
    const relay = new EdgeRelay(sched, env);
    const run = (ms: number) => sched.runUntil(sched.now + ms, () => new Promise((r) => setImmediate(r)));
    const open = (id: string) =>
      Replica.open({
        storage: new MemoryReplicaStorage(),
        transport: new WebSocketTransport({
          url: EdgeRelay.URL,
          token: () => jwt(id, FAR_S),
          env,
          createSocket: relay.createSocket,
        }),
        env,
        replicaId: id,
        pingIntervalMs: 1_000,
        ackTimeoutMs: 300,
        requestTimeoutMs: 1_000,
        backoff: { baseMs: 20, capMs: 200 },
      });
    const a = await open('rA');
    const b = await open('rB');
    await a.openBucket('team:x/y');
    await a.openBucket('b');
    await b.openBucket('team:x/y');
    await run(100);
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < 40; i++) {
      writes.push(a.put('team:x/y', `k${i}`, { text: 'y'.repeat(100), i }, { ack: 'relay' }));
    }
    writes.push(a.put('b', 'solo', 1, { ack: 'relay' }));
    await run(500);
    await Promise.all(writes);
    await run(5_000); // pings and pongs: the connections must stay up
    expect((await b.get('team:x/y', 'k39'))?.value).toEqual({ text: 'y'.repeat(100), i: 39 });
    expect(b.status('team:x/y')).toMatchObject({ phase: 'ready', pending: 0 });
    expect(a.status().connection).toBe('open');
    expect(relay.violations).toEqual([]);

    const roots = relay.sockets.filter((s) => s.bucket === undefined);
    expect(roots.map((s) => s.closedWith)).toEqual([1000, 1000]);
    expect(
      relay.sockets
        .filter((s) => s.bucket !== undefined)
        .map((s) => `${s.replicaId} ${s.url}`)
        .sort(),
    ).toEqual([
      'rA wss://edge.test/v1/sync/b',
      'rA wss://edge.test/v1/sync/team%3Ax%2Fy',
      'rB wss://edge.test/v1/sync/team%3Ax%2Fy',
    ]);
    // B's socket received A's 40 writes: it reported, and every report is a byte count the relay
    // sent up to a frame boundary.
    const bSocket = relay.sockets.find((s) => s.replicaId === 'rB' && s.bucket === 'team:x/y') as EdgeSocket;
    expect(bSocket.reports.length).toBeGreaterThan(0);
    for (const r of bSocket.reports) expect(bSocket.sentTotals).toContain(r);
    await a.close();
    await b.close();
  });
});

describe('WebSocketTransport packed ops', () => {
  const push: PushMsg = {
    type: 'push',
    bucket: 'b',
    ops: [localOp(1, 'k1', { a: 1 }), localOp(2, 'k2', 'v')],
  };
  /** The `ops` field of the last frame `s` sent, as MessagePack decodes it (before expanding). */
  const lastOpsField = (s: FakeSocket): unknown => {
    const last = s.raw.at(-1);
    if (!(last instanceof Uint8Array)) throw new Error('no binary frame');
    return (msgpack.unpack(last) as { ops: unknown }).ops;
  };

  for (const [welcomed, packed] of [
    [{ packOps: PACKED_OPS }, true],
    [{}, false],
    [{ packOps: PACKED_OPS + 1 }, false],
  ] as const) {
    it(`sends pushes ${packed ? 'packed' : 'as tuples'} after a welcome with ${JSON.stringify(welcomed)}`, async () => {
      const { transport, sockets } = setup({ token: jwt('rA', FAR_S) });
      await settle();
      const s = sockets[0] as FakeSocket;
      s.open();
      transport.send(HELLO);
      expect(s.sent).toEqual([HELLO_WIRE]);
      s.receive(welcome(welcomed));
      transport.send(push);
      expect(lastOpsField(s) instanceof Uint8Array).toBe(packed);
      expect(s.sent.at(-1)).toEqual(push);
    });
  }

  it('neither offers nor sends packed ops over a JSON socket', async () => {
    const { transport, sockets } = setup({ token: jwt('rA', FAR_S), format: 'json' });
    await settle();
    const s = sockets[0] as FakeSocket;
    s.open();
    transport.send(HELLO);
    expect(s.sent).toEqual([HELLO]);
    s.receive(welcome({ packOps: PACKED_OPS }));
    transport.send(push);
    expect(typeof s.raw.at(-1)).toBe('string');
    expect(s.sent.at(-1)).toEqual(push);
  });
});
