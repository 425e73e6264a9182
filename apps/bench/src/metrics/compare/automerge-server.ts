/**
 * An automerge-repo sync server (a `Repo` on automerge-repo-network-websocket's
 * `WebSocketServerAdapter` over a `ws` WebSocketServer, as automerge-repo's own sync-server
 * example runs it, in memory) in a child process of the bench.
 */
import { createRequire } from 'node:module';
import { ImmutableString } from '@automerge/automerge';
import { Repo } from '@automerge/automerge-repo';
import { WebSocketServerAdapter } from '@automerge/automerge-repo-network-websocket';
import { benchKey, benchValue } from '../../peer-page/data';
import { answer, serve } from './serve';

interface WsServer {
  handleUpgrade(req: unknown, socket: unknown, head: Buffer, cb: (ws: unknown) => void): void;
  emit(event: 'connection', ws: unknown, req: unknown): boolean;
}

// The `ws` the network adapter itself depends on.
const req = createRequire(
  createRequire(import.meta.url).resolve('@automerge/automerge-repo-network-websocket/package.json'),
);
const { WebSocketServer } = req('ws') as { WebSocketServer: new (opts: { noServer: true }) => WsServer };
const wss = new WebSocketServer({ noServer: true });

serve({
  onUpgrade: (request, socket, head) =>
    wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request)),
});
const repo = new Repo({
  network: [new WebSocketServerAdapter(wss as never)],
  // A sync server shares every document it holds with whoever asks for it.
  sharePolicy: async () => true,
});

/** A bench value as Automerge holds it: one atomic string of its JSON (see `automergeValue`). */
export const automergeValue = (i: number, rev = 0) => new ImmutableString(JSON.stringify(benchValue(i, rev)));

answer({
  /** Creates a document of `n` bench entries in one change; answers its URL. */
  fill: ({ n }) => {
    const t0 = performance.now();
    const handle = repo.create<Record<string, ImmutableString>>();
    handle.change((d) => {
      for (let i = 0; i < (n as number); i++) d[benchKey(i)] = automergeValue(i);
    });
    return {
      url: handle.url,
      ms: Math.round(performance.now() - t0),
      rss: Math.round(process.memoryUsage().rss / 2 ** 20),
    };
  },
});
