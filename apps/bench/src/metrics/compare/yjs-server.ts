/**
 * The stock y-websocket server (`@y/websocket-server`'s `setupWSConnection` on a `ws`
 * WebSocketServer, as its own `server.js` runs it, in memory: no YPERSISTENCE), in a child
 * process of the bench.
 */
import { createRequire } from 'node:module';
import { getYDoc, setupWSConnection } from '@y/websocket-server/utils';
import { benchKey, benchValue } from '../../peer-page/data';
import { answer, serve } from './serve';

interface WsServer {
  handleUpgrade(req: unknown, socket: unknown, head: Buffer, cb: (ws: unknown) => void): void;
}

// The `ws` the stock server itself runs on (its own dependency).
const req = createRequire(createRequire(import.meta.url).resolve('@y/websocket-server/package.json'));
const { Server } = req('ws') as { Server: new (opts: { noServer: true }) => WsServer };
const wss = new Server({ noServer: true });

serve({
  onUpgrade: (request, socket, head) =>
    wss.handleUpgrade(request, socket, head, (ws) => setupWSConnection(ws as never, request)),
});

answer({
  /** Fills the `kv` map of document `doc` with `n` bench entries in one transaction. */
  fill: ({ doc, n }) => {
    const t0 = performance.now();
    const ydoc = getYDoc(doc as string);
    const map = ydoc.getMap('kv');
    ydoc.transact(() => {
      for (let i = 0; i < (n as number); i++) map.set(benchKey(i), benchValue(i));
    });
    return { ms: Math.round(performance.now() - t0), rss: Math.round(process.memoryUsage().rss / 2 ** 20) };
  },
});
