import * as Comlink from 'comlink';
import type { TabPort } from './worker/api';

/** Where the replica lives: `auto` prefers a SharedWorker; `dedicated` forces the per-tab fallback. */
export type Hosting = 'auto' | 'shared' | 'dedicated';

/** A live link from this tab to the worker hosting the replica. */
export interface WorkerLink {
  port: Comlink.Remote<TabPort>;
  kind: 'shared' | 'dedicated';
  /** Drops the link; for a dedicated worker, terminates it (it dies like a closed tab). */
  terminate(): void;
}

function hasSharedWorker(): boolean {
  return typeof (globalThis as { SharedWorker?: unknown }).SharedWorker === 'function';
}

/**
 * Starts (or joins) the worker. The `new URL(..., import.meta.url)` forms are spelled out in
 * place so bundlers (Vite, webpack, esbuild plugins) find and bundle the worker entry.
 */
export function connectWorker(dbName: string, hosting: Hosting, workerUrl?: string | URL): WorkerLink {
  const shared = hosting === 'shared' || (hosting === 'auto' && hasSharedWorker());
  const name = `mittsync:${dbName}`;
  if (shared) {
    const w =
      workerUrl !== undefined
        ? new SharedWorker(workerUrl, { type: 'module', name })
        : new SharedWorker(new URL('./worker/entry.ts', import.meta.url), { type: 'module', name });
    w.port.start();
    return {
      port: Comlink.wrap<TabPort>(w.port),
      kind: 'shared',
      terminate: () => w.port.close(),
    };
  }
  const w =
    workerUrl !== undefined
      ? new Worker(workerUrl, { type: 'module', name })
      : new Worker(new URL('./worker/entry.ts', import.meta.url), { type: 'module', name });
  return { port: Comlink.wrap<TabPort>(w), kind: 'dedicated', terminate: () => w.terminate() };
}

/** Holds a Web Lock named after this tab until `release()`: the worker's sign that the tab lives. */
export async function holdTabLock(tabId: string): Promise<() => void> {
  let release: () => void = () => {};
  await new Promise<void>((granted) => {
    void navigator.locks.request(`mittsync-tab:${tabId}`, () => {
      granted();
      return new Promise<void>((r) => {
        release = r;
      });
    });
  });
  return release;
}
