import { backoffDelay, type Env } from './env';
import { type ClientMessage, PROTOCOL_VERSION, type ServerMessage } from './protocol';
import type { Transport } from './transport';

export type ConnectionState = 'connecting' | 'open' | 'closed';

/** What the connection tells its owner. */
export interface ConnectionEvents {
  /** The connection state changed to `connecting` (show it). */
  connecting(): void;
  /** A frame from the relay. */
  message(msg: ServerMessage): void;
  /** Each ping interval while open, before the ping goes out (probe for a lost stream tail). */
  probe(): void;
  /** The connection dropped; a reconnect is scheduled after this returns (unless closed). */
  down(): void;
}

export interface ConnectionOptions {
  /** Liveness probe interval. */
  pingIntervalMs: number;
  /** Reconnect backoff base and cap (full jitter). */
  backoff: { baseMs: number; capMs: number };
}

/**
 * The relay connection of a replica: says hello on open, pings to find a socket that died
 * without saying so (two intervals unanswered), and reconnects after a drop with full-jitter
 * backoff that starts over once the relay welcomes it. What to do on welcome, on a drop or
 * on a probe is its owner's business ({@link ConnectionEvents}).
 */
export class RelayConnection {
  state: ConnectionState = 'closed';
  /** The relay welcomed the current connection (set by the owner on `welcome`). */
  welcomed = false;
  private attempt = 0;
  private reconnectTimer: unknown;
  private pingTimer: unknown;
  private pingId = 0;
  /** Pings sent without an answer yet. */
  private unansweredPings = 0;
  private closed = false;

  constructor(
    private readonly transport: Transport,
    private readonly env: Env,
    private readonly replicaId: string,
    private readonly opts: ConnectionOptions,
    private readonly events: ConnectionEvents,
  ) {}

  /** Connects unless connected, connecting or closed for good. */
  connect(): void {
    if (this.closed || this.state !== 'closed') return;
    this.state = 'connecting';
    this.events.connecting();
    let live = true;
    this.transport.connect({
      open: () => {
        if (!live) return;
        this.state = 'open';
        this.send({ type: 'hello', v: PROTOCOL_VERSION, replicaId: this.replicaId });
        this.armPing();
      },
      message: (msg) => {
        if (live) this.events.message(msg);
      },
      close: () => {
        if (!live) return;
        live = false;
        this.onDown();
      },
    });
  }

  /** Sends a frame when open; drops it otherwise (whatever needs it is re-sent after a reconnect). */
  send(msg: ClientMessage): void {
    if (this.state === 'open') this.transport.send(msg);
  }

  /** Drops the connection now; with `reconnect: false` it stays down until `connect()`. */
  disconnect(opts?: { reconnect?: boolean }): void {
    if (opts?.reconnect === false) {
      this.env.clearTimeout(this.reconnectTimer);
      this.attempt = -1;
    }
    this.transport.close();
  }

  /** The relay welcomed us: the reconnect backoff starts over. */
  welcome(): void {
    this.welcomed = true;
    this.attempt = 0;
  }

  /** A pong came: the socket is alive. */
  answered(): void {
    this.unansweredPings = 0;
  }

  /** Closes for good: no more reconnects or pings. */
  close(): void {
    this.closed = true;
    this.env.clearTimeout(this.reconnectTimer);
    this.env.clearTimeout(this.pingTimer);
    this.transport.close();
  }

  private onDown(): void {
    this.state = 'closed';
    this.welcomed = false;
    this.unansweredPings = 0;
    this.env.clearTimeout(this.pingTimer);
    this.events.down();
    if (this.closed) return;
    if (this.attempt < 0) {
      this.attempt = 0;
      return;
    }
    const { baseMs, capMs } = this.opts.backoff;
    const delay = backoffDelay(this.attempt++, this.env.random, baseMs, capMs);
    this.reconnectTimer = this.env.setTimeout(() => this.connect(), delay);
  }

  private armPing(): void {
    this.env.clearTimeout(this.pingTimer);
    this.pingTimer = this.env.setTimeout(() => this.ping(), this.opts.pingIntervalMs);
  }

  private ping(): void {
    if (this.state !== 'open') return;
    if (this.unansweredPings >= 2) {
      // No answer for two whole intervals: the socket is dead without having said so.
      this.transport.close();
      return;
    }
    this.events.probe();
    this.unansweredPings++;
    this.send({ type: 'ping', id: ++this.pingId });
    this.armPing();
  }
}
