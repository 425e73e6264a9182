import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RelayLimits } from '../limits';

const here = dirname(fileURLToPath(import.meta.url));
const ENTRY = resolve(here, '../edge/worker.ts');
/** Where the bundled Worker goes (ignored by git, rebuilt when a source is newer). */
export const EDGE_BUNDLE = resolve(here, '../../dist-edge/worker.js');

/** The compatibility date the Worker is written against (also in wrangler.jsonc). */
export const COMPATIBILITY_DATE = '2025-09-01';

/**
 * Bundles the edge Worker (`src/edge/worker.ts`, with core, Hono and jose) into one ES module
 * with esbuild, as wrangler would: the Workers conditions pick each package's build for
 * workerd. Returns the bundle's path.
 */
export async function buildEdgeWorker(outfile = EDGE_BUNDLE, schemaModule?: string): Promise<string> {
  const { build } = await import('esbuild');
  mkdirSync(dirname(outfile), { recursive: true });
  // With a schema module: an entry that registers its default export (or `schemas`) first,
  // as an application's own Worker entry would (see `setRelaySchemas`).
  const entry =
    schemaModule === undefined
      ? { entryPoints: [ENTRY] }
      : {
          stdin: {
            contents: [
              `import * as mod from ${JSON.stringify(resolve(schemaModule))};`,
              `import { setRelaySchemas } from ${JSON.stringify(ENTRY)};`,
              'const exported: Record<string, any> = { ...mod };',
              'setRelaySchemas(exported.default ?? exported.schemas);',
              `export * from ${JSON.stringify(ENTRY)};`,
              `export { default } from ${JSON.stringify(ENTRY)};`,
            ].join('\n'),
            resolveDir: dirname(ENTRY),
            sourcefile: 'worker-with-schemas.ts',
            loader: 'ts' as const,
          },
        };
  await build({
    ...entry,
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    // "source": the workspace's @mittsync/* packages as TypeScript sources, not their dist/.
    conditions: ['source', 'workerd', 'worker', 'browser'],
    target: 'es2022',
    sourcemap: 'linked',
    logLevel: 'warning',
  });
  return outfile;
}

const built = new Map<string, Promise<string>>();

/**
 * This process's bundle, built once (per schema module): a file of its own
 * (`worker-<pid>[-n].js`, removed when the process exits), so test forks and relays started
 * side by side never write over one another's.
 */
function processBundle(schemaModule?: string): Promise<string> {
  const key = schemaModule ?? '';
  let p = built.get(key);
  if (p === undefined) {
    p = (async () => {
      const out = join(dirname(EDGE_BUNDLE), `worker-${process.pid}${key === '' ? '' : `-${built.size}`}.js`);
      await buildEdgeWorker(out, schemaModule);
      process.once('exit', () => {
        for (const f of [out, `${out}.map`]) rmSync(f, { force: true });
      });
      return out;
    })();
    built.set(key, p);
  }
  return p;
}

export interface EdgeRelayOptions {
  /** TCP port on 127.0.0.1 (0 picks a free one). */
  port?: number;
  /** Directory the objects' SQLite files persist in; undefined keeps them in memory. */
  persist?: string;
  /** HS256 secret for real tokens. */
  secret?: string;
  /** Dev mode's own secret: serves `/v1/dev/token` (loopback only). */
  devSecret?: string;
  limits?: Partial<RelayLimits>;
  flushTimeoutMs?: number;
  /** Received-bytes report interval asked of clients. */
  recvEvery?: number;
  /** Serve this directory's files for paths the relay does not own (a built web app). */
  staticDir?: string;
  /** A bundle built before (default: build one now). */
  bundle?: string;
  /**
   * Opens workerd's V8 inspector on this loopback port (DevTools, or a CPU profile of the
   * Worker and its objects: they run in one isolate).
   */
  inspectorPort?: number;
  /**
   * A module exporting schemas by bucket pattern (default export or `schemas`), bundled into
   * the Worker and registered with `setRelaySchemas` (ignored with `bundle`).
   */
  schemaModule?: string;
  /** workerd's output (default: discarded). */
  log?: (line: string) => void;
}

/** A relay running on workerd through Miniflare, on a loopback port. */
export interface EdgeRelay {
  /** `ws://127.0.0.1:port/v1/sync` */
  url: string;
  /** `http://127.0.0.1:port` */
  httpUrl: string;
  port: number;
  /** The Miniflare instance (tests reach objects through it). */
  mf: import('miniflare').Miniflare;
  /** Disposes the runtime: workerd exits; persisted objects stay on disk. */
  close(): Promise<void>;
}

/**
 * Runs the edge relay locally on workerd (Miniflare): the same Worker and SQLite-backed
 * `BucketObject` as a deployment, with `durableObjectsPersist` keeping each object's database
 * under `persist` across restarts.
 */
export async function startEdgeRelay(opts: EdgeRelayOptions = {}): Promise<EdgeRelay> {
  const { Miniflare, Log, LogLevel } = await import('miniflare');
  const bundle = opts.bundle ?? (await processBundle(opts.schemaModule));
  if (opts.persist !== undefined) mkdirSync(opts.persist, { recursive: true });
  const bindings: Record<string, string> = {};
  if (opts.secret !== undefined) bindings.MITTSYNC_SECRET = opts.secret;
  if (opts.devSecret !== undefined) {
    bindings.MITTSYNC_DEV = '1';
    bindings.MITTSYNC_DEV_SECRET = opts.devSecret;
  }
  if (opts.limits !== undefined) bindings.MITTSYNC_LIMITS = JSON.stringify(opts.limits);
  if (opts.flushTimeoutMs !== undefined) bindings.MITTSYNC_FLUSH_TIMEOUT_MS = String(opts.flushTimeoutMs);
  if (opts.recvEvery !== undefined) bindings.MITTSYNC_RECV_EVERY = String(opts.recvEvery);
  const log = opts.log;
  const mf = new Miniflare({
    modules: true,
    scriptPath: bundle,
    modulesRoot: dirname(bundle),
    compatibilityDate: COMPATIBILITY_DATE,
    durableObjects: { BUCKETS: { className: 'BucketObject', useSQLite: true } },
    durableObjectsPersist: opts.persist === undefined ? false : join(opts.persist, 'objects'),
    bindings,
    // Never fetch `request.cf` from Cloudflare: loopback only, a placeholder is enough.
    cf: false,
    host: '127.0.0.1',
    port: opts.port ?? 0,
    ...(opts.inspectorPort === undefined ? {} : { inspectorPort: opts.inspectorPort }),
    ...(log === undefined
      ? { log: new Log(LogLevel.NONE) }
      : {
          log: new (class extends Log {
            override log(message: string): void {
              log(message);
            }
          })(LogLevel.INFO),
          handleRuntimeStdio: (stdout: NodeJS.ReadableStream, stderr: NodeJS.ReadableStream) => {
            stdout.on('data', (d: Buffer) => log(d.toString().trimEnd()));
            stderr.on('data', (d: Buffer) => log(d.toString().trimEnd()));
          },
        }),
    ...(opts.staticDir === undefined
      ? {}
      : {
          assets: {
            directory: opts.staticDir,
            binding: 'ASSETS',
            routerConfig: { has_user_worker: true, invoke_user_worker_ahead_of_assets: true },
            assetConfig: { not_found_handling: 'single-page-application' },
          },
        }),
  });
  const ready = await mf.ready;
  const httpUrl = ready.origin;
  return {
    url: `${httpUrl.replace(/^http/, 'ws')}/v1/sync`,
    httpUrl,
    port: Number(ready.port),
    mf,
    close: () => mf.dispose(),
  };
}
