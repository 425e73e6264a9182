import { describe, expect, it } from 'vitest';
import { RelayConnection } from './connection';
import { type ClientMessage, PROTOCOL_VERSION, type ServerMessage } from './protocol';
import { fakeSync } from './testing/sync-fakes';
import type { Transport, TransportHandlers } from './transport';

/** A transport whose connection opens and closes when the test says so. */
class FakeTransport implements Transport {
  handlers: TransportHandlers | null = null;
  connects = 0;
  readonly sent: ClientMessage[] = [];
  connect(handlers: TransportHandlers): void {
    this.connects++;
    this.handlers = handlers;
  }
  send(msg: ClientMessage): void {
    this.sent.push(msg);
  }
  close(): void {
    const h = this.handlers;
    this.handlers = null;
    h?.close({});
  }
  open(): void {
    this.handlers?.open();
  }
  deliver(msg: ServerMessage): void {
    this.handlers?.message(msg);
  }
}

function rig() {
  const f = fakeSync();
  const transport = new FakeTransport();
  const events: string[] = [];
  const received: ServerMessage[] = [];
  const conn = new RelayConnection(
    transport,
    f.env,
    'rA',
    { pingIntervalMs: 1_000, backoff: { baseMs: 100, capMs: 1_000 } },
    {
      connecting: () => events.push('connecting'),
      message: (m) => received.push(m),
      probe: () => events.push('probe'),
      down: () => events.push(`down:${conn.state}`),
    },
  );
  return { f, transport, conn, events, received };
}

const pings = (t: FakeTransport) => t.sent.filter((m) => m.type === 'ping').length;

describe('RelayConnection', () => {
  it('says hello on open and sends only while open', () => {
    const { transport, conn, events } = rig();
    conn.send({ type: 'ping', id: 0 });
    conn.connect();
    expect(conn.state).toBe('connecting');
    expect(events).toEqual(['connecting']);
    conn.send({ type: 'ping', id: 0 });
    transport.open();
    expect(conn.state).toBe('open');
    expect(transport.sent).toEqual([{ type: 'hello', v: PROTOCOL_VERSION, replicaId: 'rA' }]);
  });

  it('hands relay frames to its owner', () => {
    const { transport, conn, received } = rig();
    conn.connect();
    transport.open();
    transport.deliver({ type: 'pong', id: 1, heads: {} });
    expect(received).toEqual([{ type: 'pong', id: 1, heads: {} }]);
  });

  it('reports a drop and reconnects after a backoff no longer than the cap', async () => {
    const { f, transport, conn, events } = rig();
    conn.connect();
    transport.open();
    conn.welcome();
    transport.close();
    expect(events).toEqual(['connecting', 'down:closed']);
    expect(conn.welcomed).toBe(false);
    await f.run(1_000);
    expect(transport.connects).toBe(2);
  });

  it('with reconnect: false stays down until connect()', async () => {
    const { f, transport, conn } = rig();
    conn.connect();
    transport.open();
    conn.disconnect({ reconnect: false });
    await f.run(60_000);
    expect(transport.connects).toBe(1);
    conn.connect();
    expect(transport.connects).toBe(2);
  });

  it('probes and pings each interval, and closes a socket that left two pings unanswered', async () => {
    const { f, transport, conn, events } = rig();
    conn.connect();
    transport.open();
    await f.run(1_000);
    conn.answered();
    await f.run(1_000);
    await f.run(1_000);
    expect(pings(transport)).toBe(3);
    expect(events.filter((e) => e === 'probe')).toHaveLength(3);
    expect(conn.state).toBe('open');
    await f.run(1_000); // third interval: two pings since the last answer
    expect(events).toContain('down:closed');
    expect(pings(transport)).toBe(3);
  });

  it('once closed, neither reconnects nor pings', async () => {
    const { f, transport, conn, events } = rig();
    conn.connect();
    transport.open();
    conn.close();
    await f.run(60_000);
    expect(transport.connects).toBe(1);
    expect(pings(transport)).toBe(0);
    expect(events).toEqual(['connecting', 'down:closed']);
    conn.connect();
    expect(transport.connects).toBe(1);
  });
});
