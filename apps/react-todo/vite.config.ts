import { defaultClientConditions, defineConfig } from 'vite';

// The example is served by the relay (`npm run start:react-todo`, and the e2e scenario);
// `npm run dev -w @mittsync/react-todo` proxies the relay's routes to a relay on :8787 instead.
export default defineConfig({
  root: import.meta.dirname,
  // The workspace's @mittsync/* packages as TypeScript sources (their "source" export
  // condition), so the example builds without the packages' dist/ builds.
  resolve: { conditions: ['source', ...defaultClientConditions] },
  // TSX with React's automatic runtime (no plugin needed for a production build).
  esbuild: { jsx: 'automatic' },
  // The peer's worker imports code-split modules: module workers, not the iife default.
  worker: { format: 'es' },
  build: { target: 'es2022', outDir: 'dist', emptyOutDir: true },
  server: {
    proxy: {
      '/v1': { target: 'http://127.0.0.1:8787', ws: true, changeOrigin: true },
      '/healthz': 'http://127.0.0.1:8787',
    },
  },
});
