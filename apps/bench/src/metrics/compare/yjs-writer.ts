import { createRequire } from 'node:module';
import { WebsocketProvider } from 'y-websocket';
import * as Y from 'yjs';
import { benchKey, benchValue } from '../../peer-page/data';
import { sleep } from '../peer/harness';

/** The Node side of the Yjs benchmarks: a y-websocket client on the `ws` WebSocket. */

// Node 20 has no WebSocket: the `ws` our relay runs on (as the floors resolve it).
const req = createRequire(createRequire(import.meta.url).resolve('@mittsync/relay/package.json'));
type WsClass = new (url: string, protocols?: string | string[], opts?: { maxPayload: number }) => WebSocket;
const NodeWebSocket = (req('ws') as { WebSocket: WsClass }).WebSocket;
/**
 * `ws` with a browser's message size: `ws` refuses messages over 100 MiB by default, and the
 * server sends a whole document as one sync message (about 150 MB at a million keys), which a
 * browser takes.
 */
const WebSocketPolyfill = class extends NodeWebSocket {
  constructor(url: string, protocols?: string | string[]) {
    super(url, protocols, { maxPayload: 2 ** 31 });
  }
} as unknown as typeof WebSocket;

export interface YjsClient {
  doc: Y.Doc;
  map: Y.Map<unknown>;
  close(): void;
}

/** A Y.Doc synced with `room` of the y-websocket server at `wsUrl` (resolves once synced). */
export async function yjsClient(wsUrl: string, room: string): Promise<YjsClient> {
  const doc = new Y.Doc();
  const provider = new WebsocketProvider(wsUrl, room, doc, { WebSocketPolyfill, disableBc: true });
  await new Promise<void>((resolve) => {
    const onSync = (synced: boolean) => {
      if (!synced) return;
      provider.off('sync', onSync);
      resolve();
    };
    provider.on('sync', onSync);
  });
  return {
    doc,
    map: doc.getMap('kv'),
    close: () => {
      provider.destroy();
      doc.destroy();
    },
  };
}

/** What the join waits for: the writer's clock at the moment the join starts. */
export interface WriterMark {
  client: number;
  clock: number;
}

/**
 * A writer as our join bench's (`backgroundWriter`): in sync with `room` first, then
 * `perSecond` sets a second to random existing keys of `n`, in one transaction every 10 ms.
 */
export async function yjsBackgroundWriter(wsUrl: string, room: string, n: number, perSecond: number) {
  const c = await yjsClient(wsUrl, room);
  let stop = false;
  let rev = 0;
  let ops = 0;
  let stopped: Promise<number> | undefined;
  const t0 = performance.now();
  const loop = (async () => {
    const every = 10;
    const per = Math.max(1, Math.round((perSecond * every) / 1000));
    let next = performance.now();
    while (!stop) {
      rev++;
      c.doc.transact(() => {
        for (let k = 0; k < per; k++) {
          const i = Math.floor(Math.random() * n);
          c.map.set(benchKey(i), benchValue(i, rev));
        }
      });
      ops += per;
      next += every;
      await sleep(Math.max(0, next - performance.now()));
    }
  })();
  return {
    /** The writer's state now: a join started now must include it. */
    mark: (): WriterMark => ({ client: c.doc.clientID, clock: Y.getState(c.doc.store, c.doc.clientID) }),
    /** Stops writing (once, however often called); resolves with the ops/s achieved. */
    stop: () => {
      stopped ??= (async () => {
        stop = true;
        await loop;
        const rate = ops / ((performance.now() - t0) / 1000);
        c.close();
        return rate;
      })();
      return stopped;
    },
  };
}
