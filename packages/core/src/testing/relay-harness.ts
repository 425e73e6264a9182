import { decodeFrame } from '../codec';
import { MemoryReplicaStorage } from '../memory-storage';
import type { Entry } from '../model';
import type { PageMsg, ServerMessage } from '../protocol';
import { Replica, type ReplicaOptions } from '../replica';
import { WebSocketTransport, type WebSocketTransportOptions } from '../ws-transport';
import { RawClient, type SocketTarget } from './raw-client';

/** What a token for a test should say. */
export interface TokenRequest {
  sub: string;
  read?: string[];
  write?: string[];
  /** Lifetime in seconds (default one hour); negative for an already expired token. */
  ttlS?: number;
  /** Key prefixes per bucket pattern (row-level scopes), when the token limits keys. */
  prefixes?: Record<string, string[]>;
  /** Token groups (claim `mittsync.groups`), for the admin control's allow/deny lists. */
  groups?: string[];
  /** An admin-scoped token (claim `mittsync.admin`), for `/v1/admin/...`. */
  admin?: boolean;
}

/**
 * A relay under test, as the conformance suite needs it: its addresses, how to sign tokens
 * for it, and how this process opens WebSockets (`createSocket`, from {@link SocketTarget}).
 * HTTP requests go through the global `fetch`.
 */
export interface RelayUnderTest extends SocketTarget {
  /** HTTP base URL, e.g. `http://127.0.0.1:8787`. */
  httpUrl: string;
  /** Signs a token the relay accepts. */
  makeToken(claims: TokenRequest): Promise<string>;
  /** Restarts the relay on the same storage and address (durability tests run when given). */
  restart?(): Promise<void>;
  /**
   * The close code sockets see when {@link restart} runs: 1012 from a relay that shuts down
   * gracefully (the default), 1006 where restarting kills the runtime (workerd disposed).
   */
  restartCloseCode?: number;
  close(): Promise<void>;
  /** The relay's tombstone retention, when small enough to test the horizon. */
  tombstoneRetainOps?: number;
}

/** Starts the relay the conformance suite runs against (once for the whole suite). */
export type RelaySetup = () => Promise<RelayUnderTest>;

let counter = 0;
const runId = Math.random().toString(36).slice(2, 8);

/** A bucket name (or replicaId) unique to this run, so tests never share state. */
export function uniq(prefix: string): string {
  return `${prefix}-${runId}-${++counter}`;
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `check` until it returns true; fails with `what` after `timeoutMs`. */
export async function eventually(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(20);
  }
}

/** A raw client with read/write `*`, after the handshake. */
export async function rawClient(
  relay: RelayUnderTest,
  sub = uniq('raw'),
  scopes?: Partial<TokenRequest>,
): Promise<RawClient> {
  const token = await relay.makeToken({ sub, read: ['*'], write: ['*'], ...scopes });
  return (await RawClient.open(relay, token, sub)).client;
}

/**
 * A Replica on memory storage connected through core's WebSocket transport, on the relay's
 * `createSocket`, the token in the `Authorization` header.
 */
export async function openReplica(
  relay: RelayUnderTest,
  opts: {
    sub?: string;
    read?: string[];
    write?: string[];
    prefixes?: Record<string, string[]>;
    transport?: Partial<WebSocketTransportOptions>;
  } & Partial<Omit<ReplicaOptions, 'storage' | 'transport'>> = {},
): Promise<Replica> {
  const { sub: given, read, write, prefixes, transport, ...rest } = opts;
  const sub = given ?? uniq('r');
  const transportOpts: WebSocketTransportOptions = {
    url: relay.url,
    createSocket: relay.createSocket,
    tokenIn: 'header',
    getToken: () =>
      relay.makeToken({
        sub,
        read: read ?? ['*'],
        write: write ?? ['*'],
        ...(prefixes === undefined ? {} : { prefixes }),
      }),
    ...transport,
  };
  return Replica.open({
    storage: new MemoryReplicaStorage(),
    transport: new WebSocketTransport(transportOpts),
    replicaId: sub,
    backoff: { baseMs: 50, capMs: 500 },
    ...rest,
  });
}

/** GETs a JSON (or msgpack) answer from the relay's HTTP API. */
export async function httpGet(
  relay: Pick<RelayUnderTest, 'httpUrl'>,
  path: string,
  token?: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: ServerMessage; headers: Headers }> {
  const res = await fetch(`${relay.httpUrl}${path}`, {
    headers: { ...(token === undefined ? {} : { authorization: `Bearer ${token}` }), ...headers },
  });
  const bytes = new Uint8Array(await res.arrayBuffer());
  const json = (res.headers.get('content-type') ?? '').includes('json');
  return {
    status: res.status,
    body: decodeFrame(bytes, json ? 'json' : 'msgpack') as ServerMessage,
    headers: res.headers,
  };
}

/** Every entry of a bucket on the relay (tombstones included), read page by page over HTTP. */
export async function relayEntries(
  relay: Pick<RelayUnderTest, 'httpUrl'>,
  bucket: string,
  token: string,
): Promise<Entry[]> {
  const out: Entry[] = [];
  let after: string | undefined;
  for (;;) {
    const q = new URLSearchParams({ limit: '5000' });
    if (after !== undefined) q.set('after', after);
    const { status, body } = await httpGet(
      relay,
      `/v1/buckets/${encodeURIComponent(bucket)}/pages?${q}`,
      token,
    );
    if (status !== 200 || body.type !== 'page')
      throw new Error(`page request failed: ${status} ${JSON.stringify(body)}`);
    const page = body as PageMsg;
    out.push(...page.entries);
    if (page.next === null) return out;
    after = page.next;
  }
}

/** Live entries reduced to what must agree everywhere: key, version, value. */
export function liveState(entries: readonly Entry[]): string[] {
  return entries
    .filter((e) => !e.deleted)
    .map((e) => `${e.key}@${e.hlc}=${JSON.stringify(e.value)}`)
    .sort();
}

/**
 * Waits until every replica is ready on `bucket` with nothing pending and holds exactly the
 * relay's live entries; resolves with them. On timeout the error says which replica differs
 * and how (its status, or a few missing and extra entries).
 */
export async function convergedWithRelay(
  relay: Pick<RelayUnderTest, 'httpUrl'>,
  bucket: string,
  replicas: readonly Replica[],
  token: string,
  timeoutMs = 15_000,
): Promise<string[]> {
  let want: string[] = [];
  let why = '';
  await eventually(
    'every replica has pushed everything and equals the relay',
    async () => {
      want = liveState(await relayEntries(relay, bucket, token));
      for (const r of replicas) {
        const s = r.status(bucket);
        if (s === undefined || s.pending > 0 || s.phase !== 'ready') {
          why = `${r.replicaId}: ${r.status().connection} ${JSON.stringify(s)}`;
          return false;
        }
        const have = liveState(await r.scan(bucket, {}));
        if (JSON.stringify(have) !== JSON.stringify(want)) {
          const w = new Set(want);
          const h = new Set(have);
          why = `${r.replicaId} differs: missing ${want.filter((x) => !h.has(x)).slice(0, 5)} extra ${have.filter((x) => !w.has(x)).slice(0, 5)} (${have.length} vs ${want.length})`;
          return false;
        }
      }
      return true;
    },
    timeoutMs,
  ).catch((e: Error) => {
    throw new Error(`${e.message}: ${why}`);
  });
  return want;
}

/** Writers started by {@link startAckedWriters}: what they wrote, what the relay acked. */
export interface AckedWriters {
  /** Every key written (set or, for a few, later deleted). */
  written: Set<string>;
  /** Keys whose write the relay acknowledged (`ack: 'relay'` resolved). */
  acked: Set<string>;
  /**
   * Keys the writers deleted later: absent at the end, or a tombstone (the relay purges
   * tombstones once every replica has acknowledged them).
   */
  deleted: Set<string>;
  /** Stops writing and waits for the loops to end (acks still in flight may land later). */
  stop(): Promise<void>;
}

/**
 * Each replica writes 4 keys every 10 ms to `bucket` with `ack: 'relay'`, without waiting for
 * the acks (they land whenever the relay is up and has committed), and now and then deletes
 * an older key so tombstones take part: the load of the crash and restart tests.
 */
export function startAckedWriters(replicas: readonly Replica[], bucket: string): AckedWriters {
  const written = new Set<string>();
  const acked = new Set<string>();
  const deleted = new Set<string>();
  let running = true;
  const loops = replicas.map(async (w, i) => {
    for (let n = 0; running; n++) {
      const keys = [0, 1, 2, 3].map((j) => `w${i}-${n}-${j}`);
      for (const k of keys) written.add(k);
      w.transact(
        bucket,
        keys.map((key) => ({ key, value: n })),
        { ack: 'relay' },
      ).then(
        () => {
          for (const k of keys) acked.add(k);
        },
        () => undefined,
      );
      if (n % 10 === 5) {
        deleted.add(`w${i}-${n - 5}-0`);
        void w.del(bucket, `w${i}-${n - 5}-0`).catch(() => undefined);
      }
      await sleep(10);
    }
  });
  return {
    written,
    acked,
    deleted,
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}
