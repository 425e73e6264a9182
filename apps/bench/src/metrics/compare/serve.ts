import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { extname, join, normalize } from 'node:path';
import type { Duplex } from 'node:stream';

/**
 * What the child processes of the compare benchmarks (see `child.ts`) share: an HTTP server
 * (the compared systems' WebSockets, or the compare page's files) and answering the bench
 * process's commands over the IPC channel.
 */

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.wasm': 'application/wasm',
  '.css': 'text/css',
};

/**
 * An HTTP server on 127.0.0.1 (port 0) serving the files of `dir` (if given) and handing
 * WebSocket upgrades to `onUpgrade` (if given); tells the parent its port once listening.
 */
export function serve(opts: {
  dir?: string;
  onUpgrade?: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
}): Server {
  const { dir, onUpgrade } = opts;
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
    try {
      if (dir === undefined) throw new Error('no files here');
      const body = await readFile(join(dir, path === '/' ? 'index.html' : path));
      res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404);
      res.end();
    }
  });
  server.on('upgrade', onUpgrade ?? ((_req, socket) => socket.destroy()));
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    process.send?.({ type: 'listening', port: typeof address === 'object' ? address?.port : undefined });
  });
  return server;
}

/** A command from the bench process: `{ id, cmd, ...args }`, answered with `{ id, result | error }`. */
export type Command = { id: number; cmd: string } & Record<string, unknown>;

/** Answers the parent's commands with `handlers[cmd]`; exits when the parent goes away. */
export function answer(handlers: Record<string, (args: Command) => unknown>): void {
  process.on('message', async (msg: Command) => {
    try {
      const handler = handlers[msg.cmd];
      if (handler === undefined) throw new Error(`unknown command ${msg.cmd}`);
      process.send?.({ id: msg.id, result: await handler(msg) });
    } catch (e) {
      process.send?.({ id: msg.id, error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
    }
  });
  process.on('disconnect', () => process.exit(0));
}
