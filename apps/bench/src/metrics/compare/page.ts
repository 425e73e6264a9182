import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { root } from '../peer/harness';
import { startServer } from './child';

let served: Promise<string> | undefined;

/**
 * Builds the compare page (`apps/bench/src/compare-page`: yjs.html, automerge.html) and serves
 * it from a child process, once per process; resolves with its base URL.
 */
export function comparePage(): Promise<string> {
  served ??= (async () => {
    const { build } = await import('vite');
    const pageRoot = join(root, 'apps', 'bench', 'src', 'compare-page');
    const outDir = mkdtempSync(join(tmpdir(), 'mittsync-compare-page-'));
    process.once('exit', () => rmSync(outDir, { recursive: true, force: true }));
    await build({
      root: pageRoot,
      logLevel: 'warn',
      build: {
        outDir,
        emptyOutDir: true,
        target: 'es2022',
        // Automerge's WebAssembly module inlined as base64 makes a large chunk: expected.
        chunkSizeWarningLimit: 10_000,
        rollupOptions: {
          input: { yjs: join(pageRoot, 'yjs.html'), automerge: join(pageRoot, 'automerge.html') },
        },
      },
    });
    // Ends with this process (the IPC channel closes).
    const server = await startServer('static-server.ts', [outDir]);
    return server.httpUrl;
  })();
  return served;
}
