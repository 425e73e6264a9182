/**
 * The Automerge side of the compare page: automerge-repo with its WebSocket client and
 * IndexedDB storage adapters, one document holding a map of keys. The slim entry points with
 * the base64 WebAssembly module load without a bundler plugin.
 */

import { automergeWasmBase64 } from '@automerge/automerge/automerge.wasm.base64';
import { type Heads, hasHeads, initializeBase64Wasm } from '@automerge/automerge/slim';
import { type AutomergeUrl, type DocHandle, Repo } from '@automerge/automerge-repo/slim';
import { WebSocketClientAdapter } from '@automerge/automerge-repo-network-websocket';
import { IndexedDBStorageAdapter } from '@automerge/automerge-repo-storage-indexeddb';

type KeyMap = Record<string, unknown>;

const wasm = initializeBase64Wasm(automergeWasmBase64);
let repo: Repo | null = null;

/** Resolves once `test(doc)` holds, testing after each change of the handle's document. */
const until = (handle: DocHandle<KeyMap>, test: () => boolean) =>
  new Promise<void>((resolve) => {
    if (test()) return resolve();
    const check = () => {
      if (!test()) return;
      handle.off('change', check);
      resolve();
    };
    handle.on('change', check);
  });

const api = {
  /** Resolves once the WebAssembly module is loaded (not timed: a page load's work). */
  ready: () => wasm,

  /**
   * Joins document `url` on a fresh database: ms from creating the repo until the document
   * holds all `n` keys and the writer's changes up to `heads`, and is saved to IndexedDB.
   */
  async join(wsUrl: string, dbName: string, url: string, n: number, heads: Heads) {
    const t0 = performance.now();
    const log: string[] = [];
    const step = (what: string) => log.push(`${Math.round(performance.now() - t0)} ${what}`);
    repo = new Repo({
      network: [new WebSocketClientAdapter(wsUrl)],
      storage: new IndexedDBStorageAdapter(dbName),
    });
    // The network adapter gives up waiting for the server after 1 s and the repo then calls a
    // document unavailable; on this loaded machine the server's handshake can take longer.
    // An app waits for the document to arrive, as here.
    const handle = await repo.find<KeyMap>(url as AutomergeUrl, {
      allowableStates: ['ready', 'unavailable'],
    });
    if (!handle.isReady()) {
      step('unavailable at first');
      await handle.whenReady(['ready']);
    }
    step('found');
    await until(handle, () => Object.keys(handle.doc()).length === n);
    step(`${n} keys`);
    await until(handle, () => hasHeads(handle.doc(), heads));
    step('writer heads');
    await repo.flush([handle.documentId]);
    step('flushed');
    return { ms: performance.now() - t0, log };
  },

  /** Untimed check of a join: a repo on the database alone (no network) finds it complete. */
  async verify(dbName: string, url: string, n: number, heads: Heads) {
    await repo?.shutdown();
    repo = new Repo({ network: [], storage: new IndexedDBStorageAdapter(dbName) });
    const handle = await repo.find<KeyMap>(url as AutomergeUrl);
    const keys = Object.keys(handle.doc()).length;
    const included = hasHeads(handle.doc(), heads);
    return { ok: keys === n && included, detail: `${keys} of ${n} keys, writer heads included: ${included}` };
  },

  async close() {
    await repo?.shutdown();
    repo = null;
  },
};

(globalThis as unknown as { automergeBench: typeof api }).automergeBench = api;
export type AutomergePageApi = { automergeBench: typeof api };
