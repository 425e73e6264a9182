import { defaultClientConditions, defineConfig } from 'vite';

// The demo is served by the relay (`npm start`); `npm run dev -w @mittsync/demo` proxies the
// relay's routes to a relay on :8787 so the page can use its own origin either way. The proxy
// rewrites Host to the relay's own (changeOrigin), which is what a dev relay hands tokens to;
// Vite itself refuses foreign Host headers (server.allowedHosts), so DNS rebinding stays out.
export default defineConfig({
  root: import.meta.dirname,
  // The workspace's @mittsync/* packages as TypeScript sources (their "source" export
  // condition), not their dist/ builds.
  resolve: { conditions: ['source', ...defaultClientConditions] },
  // The peer's worker imports code-split modules: module workers, not the iife default.
  worker: { format: 'es' },
  build: { target: 'es2022', outDir: 'dist', emptyOutDir: true, chunkSizeWarningLimit: 1000 },
  server: {
    proxy: {
      '/v1': { target: 'http://127.0.0.1:8787', ws: true, changeOrigin: true },
      '/healthz': 'http://127.0.0.1:8787',
    },
  },
});
