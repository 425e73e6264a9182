import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * A compared system's server (`yjs-server.ts`, `automerge-server.ts`) as a child process, as our
 * relay runs in one: the server and the bench process (writer, Playwright) each get a core.
 * The compare page is served by a process of its own (`static-server.ts`): a sync server busy
 * with a large document would otherwise keep a browser waiting for the page.
 */

const here = dirname(fileURLToPath(import.meta.url));

export interface ServerProcess {
  child: ChildProcess;
  httpUrl: string;
  /** `ws://127.0.0.1:<port>`. */
  wsUrl: string;
  /** Runs a command of the server (see `answer` in `serve.ts`). */
  request<T>(cmd: string, args?: Record<string, unknown>): Promise<T>;
  stop(): Promise<void>;
}

/** Starts `script` (a file of this directory, run through tsx) with `args`. */
export async function startServer(script: string, args: string[] = []): Promise<ServerProcess> {
  const child = spawn(
    process.execPath,
    [
      '--max-old-space-size=8192',
      '--conditions=source',
      '--import',
      import.meta.resolve('tsx'),
      join(here, script),
      ...args,
    ],
    { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
  );
  const waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  let exited: Error | undefined;
  child.once('exit', (code, signal) => {
    exited = new Error(`${script} exited (${code ?? signal})`);
    for (const w of waiting.values()) w.reject(exited);
    waiting.clear();
  });
  const port = await new Promise<number>((resolve, reject) => {
    const onMessage = (m: { type?: string; port?: number }) => {
      if (m.type !== 'listening' || m.port === undefined) return;
      child.off('message', onMessage);
      resolve(m.port);
    };
    child.on('message', onMessage);
    child.once('exit', () => reject(exited));
  });
  child.on('message', (m: { id?: number; result?: unknown; error?: string }) => {
    if (m.id === undefined) return;
    const w = waiting.get(m.id);
    waiting.delete(m.id);
    if (m.error !== undefined) w?.reject(new Error(`${script}: ${m.error}`));
    else w?.resolve(m.result);
  });
  let id = 1;
  return {
    child,
    httpUrl: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`,
    request: <T>(cmd: string, args: Record<string, unknown> = {}) =>
      new Promise<T>((resolve, reject) => {
        if (exited !== undefined) return reject(exited);
        const n = id++;
        waiting.set(n, { resolve: resolve as (v: unknown) => void, reject });
        child.send({ id: n, cmd, ...args });
      }),
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await gone;
    },
  };
}
