import { describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame } from './codec';
import type { Env } from './env';
import type { ServerMessage } from './protocol';
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

  receive(msg: ServerMessage): void {
    // A copy: encodeFrame may hand out a view of a larger (Node Buffer) pool.
    const frame = new Uint8Array(encodeFrame(msg));
    this.onmessage?.({ data: frame.buffer });
  }

  send(data: Uint8Array | string): void {
    this.sent.push(decodeFrame(data as Uint8Array));
  }

  close(): void {
    this.readyState = 3;
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

function setup(opts: { tokenIn?: 'subprotocol' | 'header'; token: string | (() => string) }) {
  const sockets: FakeSocket[] = [];
  const { env, advance } = fakeEnv(START);
  const messages: ServerMessage[] = [];
  const transport = new WebSocketTransport({
    url: 'ws://relay.test/v1/sync',
    token: opts.token,
    ...(opts.tokenIn === undefined ? {} : { tokenIn: opts.tokenIn }),
    env,
    createSocket: (url, init) => {
      const s = new FakeSocket(url, init);
      sockets.push(s);
      return s;
    },
  });
  transport.connect({ open: () => undefined, message: (m) => messages.push(m), close: () => undefined });
  return { transport, sockets, messages, advance };
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
