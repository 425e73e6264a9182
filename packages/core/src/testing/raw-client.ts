import { Packr } from 'msgpackr';
import { decodeFrame, encodeFrame, PACKED_OPS } from '../codec';
import type { ErrorCode } from '../errors';
import { encodeHlc } from '../hlc';
import type { Op } from '../model';
import {
  type ClientMessage,
  PROTOCOL_VERSION,
  type ServerMessage,
  SUBPROTOCOL,
  type WelcomeMsg,
} from '../protocol';
import { isBucketName, validateServerMessage } from '../validate';
import { RecvCounter } from '../ws-link';
import { bearerSubprotocols, type WebSocketFactory, type WebSocketLike } from '../ws-transport';

// Encodes test frames exactly as given (core's encodeFrame would normalize malformed ops).
const plain = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

const CONNECTING = 0;
const OPEN = 1;

/**
 * The HTTP answer to a refused WebSocket upgrade. A {@link SocketTarget}'s `createSocket`
 * reports it by passing it as the `error` of the socket's first error event (the shape of the
 * standard `ErrorEvent`), before the close: standard WebSocket clients never see the response
 * of a refused upgrade, so only a factory that can read it (such as one on Node's `ws`) can.
 */
export class UpgradeRefused extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode | undefined,
  ) {
    super(`upgrade refused with HTTP ${status}${code === undefined ? '' : ` (${code})`}`);
  }
}

/** Where a raw client connects, and how this process opens a WebSocket. */
export interface SocketTarget {
  /** WebSocket sync endpoint, e.g. `ws://127.0.0.1:8787/v1/sync`. */
  url: string;
  /**
   * Opens a WebSocket offering `protocols` and sending `headers` on the upgrade request
   * (tokens travel there), and reports a refused upgrade as an {@link UpgradeRefused}.
   */
  createSocket: WebSocketFactory;
}

/** One bucket's socket of a routed client, and the frames waiting for its handshake. */
interface BucketSocket {
  ws: WebSocketLike;
  flow: RecvCounter;
  open: boolean;
  queue: (Uint8Array | string)[];
}

type Msg<T extends ServerMessage['type']> = Extract<ServerMessage, { type: T }>;

/** A frame as the socket hands it over, as bytes and format; undefined for what it cannot be. */
function inbound(data: unknown): { bytes: Uint8Array; text: boolean } | undefined {
  if (typeof data === 'string') return { bytes: new TextEncoder().encode(data), text: true };
  if (data instanceof Uint8Array) return { bytes: data, text: false };
  if (data instanceof ArrayBuffer) return { bytes: new Uint8Array(data), text: false };
  return undefined;
}

function refusalOf(ev: unknown): UpgradeRefused | undefined {
  const error = (ev as { error?: unknown } | null)?.error;
  return error instanceof UpgradeRefused ? error : undefined;
}

/**
 * A bare protocol client for conformance tests, benchmarks and abuse tests: it speaks frames
 * directly, with no replica logic, so tests can send anything, including garbage. It runs on
 * any WebSocket the target's `createSocket` opens.
 */
export class RawClient {
  private readonly inbox: ServerMessage[] = [];
  private waiters: { pred: (m: ServerMessage) => boolean; resolve: (m: ServerMessage) => void }[] = [];
  /** Every message received, in order (tests inspect it). */
  readonly received: ServerMessage[] = [];
  /** Frames that did not decode or validate. */
  malformed = 0;
  /** `deliver` frames that came with packed ops (see `op-pack.ts`), and with tuples. */
  readonly delivers = { packed: 0, tuples: 0 };
  /** Said `hello.packOps` and was welcomed with it: pushes go packed. */
  private packOps = false;
  private helloExtra: { packOps?: number } = {};
  /** Resolves with the close code and reason. */
  readonly closed: Promise<{ code: number; reason: string }>;
  private originSeq = 0;
  private wall = Date.now();
  private counter = 0;

  /**
   * Set when the relay's welcome asked for one socket per bucket (the edge relay): frames
   * with a `bucket` then go to that bucket's socket, opened on first use, and everything that
   * arrives on any socket lands in this one client's inbox.
   */
  private routed: { target: SocketTarget; token: string; sockets: Map<string, BucketSocket> } | undefined;
  /** The bucket socket frames without a bucket go to (the last one used), if routed. */
  private lastBucket: string | undefined;
  private closeOnce: ((info: { code: number; reason: string }) => void) | undefined;

  private constructor(
    /** The open socket (binary frames arrive as `ArrayBuffer`s). */
    readonly socket: WebSocketLike,
    readonly replicaId: string,
  ) {
    this.closed = new Promise((resolve) => {
      let done = false;
      this.closeOnce = (info) => {
        if (done) return;
        done = true;
        resolve(info);
      };
    });
    this.attach(socket, undefined);
  }

  /** Routes `ws`'s frames into this client's inbox; `bucket` for a routed bucket socket. */
  private attach(ws: WebSocketLike, bucket: BucketSocket | undefined): void {
    ws.onclose = (ev) => {
      // The lobby socket closing after a routed handshake is not the client's end.
      if (bucket === undefined && this.routed !== undefined && ev.code === 1000) return;
      this.closeOnce?.({ code: ev.code, reason: String(ev.reason ?? '') });
    };
    ws.onerror = () => undefined;
    ws.onmessage = (ev) => {
      const frame = inbound(ev.data);
      const flow = bucket?.flow ?? this.rootFlow;
      if (frame !== undefined) flow.count(frame.bytes);
      let msg: ServerMessage;
      try {
        if (frame === undefined) throw new Error('unsupported frame type');
        msg = validateServerMessage(decodeFrame(frame.bytes, frame.text ? 'json' : 'msgpack'));
        if (msg.type === 'deliver') {
          const ops = frame.text ? undefined : (plain.unpack(frame.bytes) as { ops?: unknown }).ops;
          if (ops instanceof Uint8Array) this.delivers.packed++;
          else this.delivers.tuples++;
        }
      } catch {
        this.malformed++;
        return;
      }
      if (msg.type === 'pong' && bucket !== undefined) {
        const p = this.pings.get(msg.id);
        if (p !== undefined) {
          Object.assign(p.heads, msg.heads);
          if (--p.waiting > 0) return;
          this.pings.delete(msg.id);
          msg = { ...msg, heads: p.heads };
        }
      }
      if (msg.type === 'welcome') flow.welcome(msg);
      const report = flow.due();
      if (report !== undefined && ws.readyState === OPEN)
        ws.send(encodeFrame({ type: 'recv', bytes: report }));
      if (msg.type === 'welcome') {
        if (bucket !== undefined) {
          // A bucket socket's handshake: the client already has its welcome.
          bucket.open = true;
          for (const f of bucket.queue) ws.send(f);
          bucket.queue = [];
          return;
        }
      }
      this.received.push(msg);
      const i = this.waiters.findIndex((w) => w.pred(msg));
      if (i >= 0) {
        const [w] = this.waiters.splice(i, 1);
        w?.resolve(msg);
      } else this.inbox.push(msg);
    };
  }

  private readonly rootFlow = new RecvCounter();

  /** The socket a frame for `bucket` goes to, opened (with its own hello) on first use. */
  private bucketSocket(bucket: string): BucketSocket {
    const r = this.routed as NonNullable<typeof this.routed>;
    let b = r.sockets.get(bucket);
    if (b !== undefined) return b;
    const ws = r.target.createSocket(`${r.target.url}/${encodeURIComponent(bucket)}`, {
      headers: {},
      protocols: bearerSubprotocols(r.token),
    });
    ws.binaryType = 'arraybuffer';
    const made: BucketSocket = { ws, flow: new RecvCounter(), open: false, queue: [] };
    b = made;
    r.sockets.set(bucket, made);
    this.attach(ws, made);
    const onopen = () =>
      ws.send(
        encodeFrame({ type: 'hello', v: PROTOCOL_VERSION, replicaId: this.replicaId, ...this.helloExtra }),
      );
    ws.onopen = onopen;
    return made;
  }

  /** Pings a routed client's bucket sockets; their pongs are merged into one (see attach). */
  private pingAll(id: number): void {
    const sockets = [...(this.routed?.sockets.values() ?? [])];
    if (sockets.length === 0) {
      if (this.socket.readyState === OPEN) this.socket.send(encodeFrame({ type: 'ping', id }));
      return;
    }
    this.pings.set(id, { waiting: sockets.length, heads: {} });
    for (const b of sockets) {
      const frame = encodeFrame({ type: 'ping', id });
      if (!b.open) b.queue.push(frame);
      else if (b.ws.readyState === OPEN) b.ws.send(frame);
    }
  }

  /** Pings sent to several bucket sockets: how many pongs are still due, and the heads so far. */
  private readonly pings = new Map<number, { waiting: number; heads: Record<string, number> }>();

  /** Every socket of this client. */
  private allSockets(): WebSocketLike[] {
    return [this.socket, ...[...(this.routed?.sockets.values() ?? [])].map((b) => b.ws)];
  }

  /** The subprotocol the relay selected ('' for none). */
  get protocol(): string {
    return this.socket.protocol ?? '';
  }

  /**
   * Opens a socket; rejects with {@link UpgradeRefused} when the relay refuses the upgrade.
   * The token travels as a browser sends it (`subprotocol`, the default), in the
   * `Authorization` header, or in the URL (`query`, which relays refuse unless told not to);
   * `protocols` replaces the offered subprotocols outright.
   */
  static connect(
    target: SocketTarget,
    opts: {
      token?: string;
      tokenIn?: 'subprotocol' | 'header' | 'query';
      protocols?: string[];
      replicaId?: string;
    } = {},
  ): Promise<RawClient> {
    let url = target.url;
    const headers: Record<string, string> = {};
    let protocols = [SUBPROTOCOL];
    if (opts.token !== undefined) {
      if (opts.tokenIn === 'query') url += `?token=${encodeURIComponent(opts.token)}`;
      else if (opts.tokenIn === 'header') headers.authorization = `Bearer ${opts.token}`;
      else protocols = bearerSubprotocols(opts.token);
    }
    const ws = target.createSocket(url, { headers, protocols: opts.protocols ?? protocols });
    ws.binaryType = 'arraybuffer';
    return new Promise((resolve, reject) => {
      let refusal: UpgradeRefused | undefined;
      ws.onerror = (ev) => {
        refusal ??= refusalOf(ev);
        reject(refusal ?? new Error(`could not connect to ${target.url}`));
      };
      ws.onclose = (ev) => {
        reject(refusal ?? new Error(`the socket closed with ${ev.code} before it opened`));
      };
      ws.onopen = () => resolve(new RawClient(ws, opts.replicaId ?? 'raw'));
    });
  }

  /**
   * Connects and completes the handshake; `packOps` offers to read packed ops, and sends
   * pushes packed when the relay's welcome says it reads them.
   */
  static async open(
    target: SocketTarget,
    token: string,
    replicaId: string,
    opts: { packOps?: boolean } = {},
  ): Promise<{ client: RawClient; welcome: WelcomeMsg }> {
    const client = await RawClient.connect(target, { token, replicaId });
    if (opts.packOps === true) client.helloExtra = { packOps: PACKED_OPS };
    client.send({ type: 'hello', v: PROTOCOL_VERSION, replicaId, ...client.helloExtra });
    const welcome = await client.next('welcome');
    client.packOps = opts.packOps === true && welcome.packOps === PACKED_OPS;
    if (welcome.socketPerBucket === true) client.routed = { target, token, sockets: new Map() };
    return { client, welcome };
  }

  /** Sends a message (msgpack), or raw bytes / text as they are. */
  send(msg: ClientMessage | Record<string, unknown> | Uint8Array | string): void {
    if (
      this.routed !== undefined &&
      typeof msg === 'object' &&
      !(msg instanceof Uint8Array) &&
      msg.type === 'ping'
    ) {
      this.pingAll(msg.id as number);
      return;
    }
    const frame =
      typeof msg === 'string' || msg instanceof Uint8Array
        ? msg
        : encodeFrame(msg, 'msgpack', { packOps: this.packOps });
    this.route(
      typeof msg === 'object' && !(msg instanceof Uint8Array)
        ? (msg as { bucket?: unknown }).bucket
        : undefined,
      frame,
    );
  }

  /** Sends `x` as a MessagePack frame exactly as given, bypassing the codec's op encoding. */
  sendRaw(x: unknown): void {
    this.route((x as { bucket?: unknown } | null)?.bucket, plain.pack(x));
  }

  /**
   * Sends a frame on the socket it belongs to: the only one, or when routed the socket of
   * its bucket (frames without one go to the last bucket used, else the lobby socket).
   */
  private route(bucket: unknown, frame: Uint8Array | string): void {
    // A frame with a malformed bucket goes where frames without one go, to be refused there.
    const target = this.routed === undefined ? undefined : isBucketName(bucket) ? bucket : this.lastBucket;
    if (target === undefined) {
      if (this.socket.readyState === OPEN) this.socket.send(frame);
      return;
    }
    this.lastBucket = target;
    const b = this.bucketSocket(target);
    if (!b.open) b.queue.push(frame);
    else if (b.ws.readyState === OPEN) b.ws.send(frame);
  }

  /** Waits for the next message of `type` (and matching `pred`), taking it from the inbox. */
  next<T extends ServerMessage['type']>(
    type: T,
    pred: (m: Msg<T>) => boolean = () => true,
    timeoutMs = 10_000,
  ): Promise<Msg<T>> {
    const match = (m: ServerMessage): boolean => m.type === type && pred(m as Msg<T>);
    const i = this.inbox.findIndex(match);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0] as Msg<T>);
    return new Promise((resolve, reject) => {
      const w = { pred: match, resolve: (m: ServerMessage) => resolve(m as Msg<T>) };
      this.waiters.push(w);
      const timer = setTimeout(() => {
        if (!this.waiters.includes(w)) return;
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`timed out waiting for ${type}; inbox: ${this.inbox.map((m) => m.type).join(',')}`));
      }, timeoutMs);
      // Where timers keep a process alive (Node), a pending wait should not.
      (timer as { unref?: () => void }).unref?.();
    });
  }

  /** Waits for an error frame with `code`. */
  nextError(code: ErrorCode, timeoutMs?: number): Promise<Msg<'error'>> {
    return this.next('error', (m) => m.code === code, timeoutMs);
  }

  /** Drops queued messages (optionally only of one type). */
  drain(type?: ServerMessage['type']): ServerMessage[] {
    const out: ServerMessage[] = [];
    for (let i = this.inbox.length - 1; i >= 0; i--) {
      const m = this.inbox[i] as ServerMessage;
      if (type === undefined || m.type === type) out.unshift(...this.inbox.splice(i, 1));
    }
    return out;
  }

  /** A fresh, valid op of this client's replica (next originSeq, a current HLC). */
  op(key: string, value: unknown = null, kind: 'set' | 'del' = 'set'): Op {
    const wall = Date.now();
    if (wall > this.wall) {
      this.wall = wall;
      this.counter = 0;
    } else if (++this.counter > 0xffff) {
      this.wall++;
      this.counter = 0;
    }
    const hlc = encodeHlc(this.wall, this.counter, this.replicaId);
    this.originSeq++;
    return kind === 'del'
      ? { origin: this.replicaId, originSeq: this.originSeq, key, kind, hlc }
      : { origin: this.replicaId, originSeq: this.originSeq, key, kind, value: value as Op['value'], hlc };
  }

  /** Sets the next originSeq (after reconnecting with a known reception counter). */
  resumeAt(received: number): void {
    this.originSeq = received;
  }

  close(): void {
    for (const ws of this.allSockets()) {
      if (ws.readyState === OPEN || ws.readyState === CONNECTING) ws.close(1000);
    }
  }

  /**
   * Drops the connection without a closing handshake where the socket can (`ws` has
   * `terminate`), as a crashed or unplugged client would; elsewhere closes it.
   */
  terminate(): void {
    for (const ws of this.allSockets()) {
      const terminate = (ws as { terminate?: () => void }).terminate;
      if (terminate !== undefined) terminate.call(ws);
      else if (ws.readyState === OPEN || ws.readyState === CONNECTING) ws.close(1000);
    }
  }
}
