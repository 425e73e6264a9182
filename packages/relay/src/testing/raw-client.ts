import {
  type ClientMessage,
  decodeFrame,
  type ErrorCode,
  encodeFrame,
  type Op,
  PROTOCOL_VERSION,
  type ServerMessage,
  validateServerMessage,
  type WelcomeMsg,
} from '@mittsync/core';
import { encodeHlc } from '@mittsync/core/model';
import { Packr } from 'msgpackr';
import WebSocket from 'ws';

// Encodes test frames exactly as given (core's encodeFrame would normalize malformed ops).
const plain = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

/** The HTTP answer to a refused WebSocket upgrade. */
export class UpgradeRefused extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode | undefined,
  ) {
    super(`upgrade refused with HTTP ${status}${code === undefined ? '' : ` (${code})`}`);
  }
}

type Msg<T extends ServerMessage['type']> = Extract<ServerMessage, { type: T }>;

/**
 * A bare protocol client for conformance tests, benchmarks and abuse tests: it speaks frames
 * directly, with no replica logic, so tests can send anything, including garbage.
 */
export class RawClient {
  private readonly inbox: ServerMessage[] = [];
  private waiters: { pred: (m: ServerMessage) => boolean; resolve: (m: ServerMessage) => void }[] = [];
  /** Every message received, in order (tests inspect it). */
  readonly received: ServerMessage[] = [];
  /** Frames that did not decode or validate. */
  malformed = 0;
  /** Resolves with the close code and reason. */
  readonly closed: Promise<{ code: number; reason: string }>;
  private originSeq = 0;
  private wall = Date.now();
  private counter = 0;

  private constructor(
    readonly ws: WebSocket,
    readonly replicaId: string,
  ) {
    this.closed = new Promise((resolve) =>
      ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
    );
    ws.on('message', (data, isBinary) => {
      const bytes = Array.isArray(data)
        ? Buffer.concat(data)
        : data instanceof ArrayBuffer
          ? new Uint8Array(data)
          : data;
      let msg: ServerMessage;
      try {
        msg = validateServerMessage(decodeFrame(bytes, isBinary ? 'msgpack' : 'json'));
      } catch {
        this.malformed++;
        return;
      }
      this.received.push(msg);
      const i = this.waiters.findIndex((w) => w.pred(msg));
      if (i >= 0) {
        const [w] = this.waiters.splice(i, 1);
        w?.resolve(msg);
      } else this.inbox.push(msg);
    });
    ws.on('error', () => undefined);
  }

  /** Opens a socket; rejects with {@link UpgradeRefused} when the relay refuses the upgrade. */
  static connect(
    url: string,
    opts: { token?: string; tokenIn?: 'header' | 'query'; replicaId?: string } = {},
  ): Promise<RawClient> {
    let target = url;
    const headers: Record<string, string> = {};
    if (opts.token !== undefined) {
      if (opts.tokenIn === 'query') target += `?token=${encodeURIComponent(opts.token)}`;
      else headers.authorization = `Bearer ${opts.token}`;
    }
    const ws = new WebSocket(target, { headers, perMessageDeflate: false, maxPayload: 256 * 1024 * 1024 });
    return new Promise((resolve, reject) => {
      ws.on('unexpected-response', (req, res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let code: ErrorCode | undefined;
          try {
            code = (decodeFrame(Buffer.concat(chunks)) as { code?: ErrorCode }).code;
          } catch {
            code = undefined;
          }
          reject(new UpgradeRefused(res.statusCode ?? 0, code));
          req.destroy();
        });
      });
      ws.on('error', reject);
      ws.on('open', () => resolve(new RawClient(ws, opts.replicaId ?? 'raw')));
    });
  }

  /** Connects and completes the handshake. */
  static async open(
    url: string,
    token: string,
    replicaId: string,
  ): Promise<{ client: RawClient; welcome: WelcomeMsg }> {
    const client = await RawClient.connect(url, { token, replicaId });
    client.send({ type: 'hello', v: PROTOCOL_VERSION, replicaId });
    const welcome = await client.next('welcome');
    return { client, welcome };
  }

  /** Sends a message (msgpack), or raw bytes / text as they are. */
  send(msg: ClientMessage | Record<string, unknown> | Uint8Array | string): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    if (typeof msg === 'string' || msg instanceof Uint8Array) this.ws.send(msg);
    else this.ws.send(encodeFrame(msg));
  }

  /** Sends `x` as a MessagePack frame exactly as given, bypassing the codec's op encoding. */
  sendRaw(x: unknown): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(plain.pack(x));
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
      setTimeout(() => {
        if (!this.waiters.includes(w)) return;
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`timed out waiting for ${type}; inbox: ${this.inbox.map((m) => m.type).join(',')}`));
      }, timeoutMs).unref?.();
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
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING)
      this.ws.close(1000);
  }

  terminate(): void {
    this.ws.terminate();
  }
}
