import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { decodeFrame } from '@mittsync/core';
import WebSocket, { WebSocketServer } from 'ws';
import { freePort, type RelayProcess } from './relay-process';

/** What the proxy does to frames right now. */
export interface FaultPolicy {
  /** Probability of dropping a frame whose type is in `dropTypes`. */
  drop: number;
  /** Probability of sending a frame twice. */
  duplicate: number;
  /** Frame types that may be dropped (default: the data plane: push, ack, deliver). */
  dropTypes: ReadonlySet<string>;
}

export interface FaultStats {
  connections: number;
  refused: number;
  forwarded: number;
  dropped: Record<string, number>;
  duplicated: Record<string, number>;
}

const DATA_PLANE = new Set(['push', 'ack', 'deliver']);

/** A small deterministic PRNG (mulberry32), so a failing run can be replayed by its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function frameType(data: Buffer, isBinary: boolean): string {
  try {
    const msg = decodeFrame(new Uint8Array(data), isBinary ? 'msgpack' : 'json') as { type?: unknown };
    return typeof msg.type === 'string' ? msg.type : '?';
  } catch {
    return '?';
  }
}

/**
 * A WebSocket man-in-the-middle between browsers and the relay, for faults the browser cannot
 * be made to suffer from the test: the replica's socket lives in a (Shared)Worker, where
 * Playwright's `routeWebSocket` does not reach. It forwards `/v1/sync` frame by frame, and on
 * request drops or duplicates frames, or cuts the network (closes every socket abruptly and
 * refuses new ones until `restore()`). Other HTTP requests pass through unchanged.
 */
export class FaultProxy {
  readonly stats: FaultStats = { connections: 0, refused: 0, forwarded: 0, dropped: {}, duplicated: {} };
  private policy: FaultPolicy = { drop: 0, duplicate: 0, dropTypes: DATA_PLANE };
  private down = false;
  private readonly pairs = new Set<{ client: WebSocket; upstream: WebSocket }>();
  private readonly random: () => number;

  private constructor(
    private readonly server: Server,
    private readonly wss: WebSocketServer,
    readonly port: number,
    private readonly relay: RelayProcess,
    seed: number,
    private readonly selected: WeakMap<IncomingMessage, string>,
  ) {
    this.random = prng(seed);
  }

  static async start(relay: RelayProcess, seed = 1): Promise<FaultProxy> {
    const port = await freePort();
    const server = createServer();
    const selected = new WeakMap<IncomingMessage, string>();
    // The client gets the subprotocol the relay selected (never one it did not).
    const wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      maxPayload: 64 << 20,
      handleProtocols: (_offered, req) => selected.get(req) || false,
    });
    const proxy = new FaultProxy(server, wss, port, relay, seed, selected);
    server.on('request', (req, res) => {
      const up = httpRequest(
        { host: '127.0.0.1', port: relay.port, path: req.url, method: req.method, headers: req.headers },
        (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
        },
      );
      up.on('error', () => {
        res.writeHead(502).end();
      });
      req.pipe(up);
    });
    server.on('upgrade', (req, socket, head) => proxy.upgrade(req, socket, head));
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    return proxy;
  }

  /** The sync URL to give a page (`?relay=`). */
  get syncUrl(): string {
    return `ws://127.0.0.1:${this.port}/v1/sync`;
  }

  setFaults(p: Partial<Omit<FaultPolicy, 'dropTypes'>> & { dropTypes?: Iterable<string> }): void {
    this.policy = {
      drop: p.drop ?? this.policy.drop,
      duplicate: p.duplicate ?? this.policy.duplicate,
      dropTypes: p.dropTypes === undefined ? this.policy.dropTypes : new Set(p.dropTypes),
    };
  }

  /** Cuts the network: every socket is destroyed (no close frame) and new ones are refused. */
  cut(): void {
    this.down = true;
    for (const { client, upstream } of this.pairs) {
      client.terminate();
      upstream.terminate();
    }
    this.pairs.clear();
  }

  /** Lets connections through again. */
  restore(): void {
    this.down = false;
  }

  get openConnections(): number {
    return this.pairs.size;
  }

  /**
   * Opens the upstream socket first, with the client's credentials (its subprotocols and any
   * `Authorization` header), and completes the client's handshake only once the relay has: a
   * refused upgrade reaches the client as the relay's HTTP answer, and the client gets the
   * subprotocol the relay selected.
   */
  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.down) {
      this.stats.refused++;
      socket.destroy();
      return;
    }
    socket.on('error', () => socket.destroy());
    const offered = (req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((p) => p.trim())
      .filter((p) => p.length > 0);
    const authorization = req.headers.authorization;
    const upstream = new WebSocket(`ws://127.0.0.1:${this.relay.port}${req.url ?? '/'}`, offered, {
      perMessageDeflate: false,
      maxPayload: 64 << 20,
      ...(authorization === undefined ? {} : { headers: { authorization } }),
    });
    upstream.on('unexpected-response', (_r, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        const type = res.headers['content-type'];
        socket.end(
          `HTTP/1.1 ${res.statusCode ?? 502} ${res.statusMessage ?? ''}\r\n` +
            `${type === undefined ? '' : `content-type: ${type}\r\n`}` +
            `content-length: ${body.length}\r\nconnection: close\r\n\r\n${body.toString('latin1')}`,
          'latin1',
        );
        upstream.terminate();
      });
    });
    upstream.on('error', () => {
      if (upstream.readyState !== WebSocket.OPEN) socket.destroy();
    });
    upstream.once('open', () => {
      if (this.down || socket.destroyed) {
        upstream.terminate();
        socket.destroy();
        return;
      }
      this.selected.set(req, upstream.protocol);
      this.wss.handleUpgrade(req, socket, head, (client) => this.pair(client, upstream));
    });
  }

  private pair(client: WebSocket, upstream: WebSocket): void {
    this.stats.connections++;
    const pair = { client, upstream };
    this.pairs.add(pair);
    const close = () => {
      this.pairs.delete(pair);
      if (client.readyState <= WebSocket.OPEN) client.terminate();
      if (upstream.readyState <= WebSocket.OPEN) upstream.terminate();
    };
    client.on('message', (data: Buffer, isBinary) => this.forward(upstream, data, isBinary));
    upstream.on('message', (data: Buffer, isBinary) => this.forward(client, data, isBinary));
    client.on('close', close);
    upstream.on('close', close);
    client.on('error', close);
    upstream.on('error', close);
  }

  private forward(to: WebSocket, data: Buffer, isBinary: boolean): void {
    const { drop, duplicate, dropTypes } = this.policy;
    if (drop > 0 || duplicate > 0) {
      const type = frameType(data, isBinary);
      if (drop > 0 && dropTypes.has(type) && this.random() < drop) {
        this.stats.dropped[type] = (this.stats.dropped[type] ?? 0) + 1;
        return;
      }
      if (duplicate > 0 && this.random() < duplicate) {
        this.stats.duplicated[type] = (this.stats.duplicated[type] ?? 0) + 1;
        to.send(data, { binary: isBinary });
      }
    }
    this.stats.forwarded++;
    to.send(data, { binary: isBinary });
  }

  async close(): Promise<void> {
    this.cut();
    this.wss.close();
    await new Promise<void>((r) => this.server.close(() => r()));
    this.server.closeAllConnections();
  }
}
