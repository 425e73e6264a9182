import { parseArgs } from 'node:util';
import { MittsyncError } from '@mittsync/core';
import { RELAY_LIMIT_NAMES, type RelayLimits, resolveLimits } from '../limits';
import { checkDataOutsideStatic, loadDevState } from './dev-state';
import { type EdgeRelay, startEdgeRelay } from './edge-local';

const USAGE = `usage: mittsync edge [options]

Runs the edge relay (the Cloudflare Worker and its Durable Objects) locally on workerd, through
Miniflare, on 127.0.0.1.

  --port <n>            TCP port on 127.0.0.1 (default 8788; 0 picks a free one)
  --data <dir>          directory the bucket objects persist in (default ./.mittsync-edge)
  --secret <s>          HS256 secret, at least 32 bytes (or env MITTSYNC_SECRET)
  --dev                 dev mode: /v1/dev/token hands out read/write * tokens to the relay's own
                        pages (demo only; own random secret kept in <data>/dev.json)
  --static <dir>        serve a built web app at / (Workers static assets)
  --limit <name=value>  override a limit (repeatable): ${RELAY_LIMIT_NAMES.join(', ')}
  --flush-timeout <ms>  state flush wait for writers (default 5000)
  --schema <file>       a module exporting schemas by bucket pattern, bundled into the Worker
                        (registered with setRelaySchemas; see docs/schemas.md)
  --verbose             print workerd's output
`;

function fail(message: string): never {
  process.stderr.write(`mittsync edge: ${message}\n\n${USAGE}`);
  process.exit(2);
}

/**
 * `mittsync edge`: the edge relay on workerd for trying the demo on the edge runtime
 * (`npm run start:edge`) and for the end-to-end tests, which start it as a child process like
 * the Node relay. Prints the same `listening on <url>` line; SIGTERM or SIGINT disposes
 * workerd (objects stay on disk).
 */
export async function edgeMain(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      port: { type: 'string' },
      data: { type: 'string' },
      secret: { type: 'string' },
      dev: { type: 'boolean', default: false },
      static: { type: 'string' },
      limit: { type: 'string', multiple: true },
      'flush-timeout': { type: 'string' },
      verbose: { type: 'boolean', default: false },
      schema: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  if (positionals.length > 0) fail(`unexpected argument ${positionals[0]}`);
  const int = (v: string | undefined, name: string): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) fail(`${name} must be a non-negative integer`);
    return n;
  };
  const limits: Partial<RelayLimits> = {};
  for (const l of values.limit ?? []) {
    const m = /^([A-Za-z]+)=(\d+)$/.exec(l);
    if (m === null) fail(`--limit expects name=value, got ${l}`);
    limits[m[1] as keyof RelayLimits] = Number(m[2]);
  }
  const secret = values.secret ?? process.env.MITTSYNC_SECRET;
  if (secret === undefined && !values.dev)
    fail('no auth: pass --secret (or MITTSYNC_SECRET), or --dev for the demo');
  const data = values.data ?? './.mittsync-edge';
  const flushTimeoutMs = int(values['flush-timeout'], '--flush-timeout');
  const log = (line: string) => process.stderr.write(`[workerd] ${line}\n`);

  let relay: EdgeRelay;
  try {
    // The Worker would only report these on its first request, as a 500.
    resolveLimits(limits);
    if (values.static !== undefined) checkDataOutsideStatic(data, values.static);
    // The same dev.json as the Node relay's: the secret survives restarts, so do the tokens the
    // browser's replicas renew with. (The ids issued are remembered by the Worker, per run.)
    const devSecret = values.dev ? loadDevState(data).secret : undefined;
    relay = await startEdgeRelay({
      port: int(values.port, '--port') ?? 8788,
      persist: data,
      ...(secret === undefined ? {} : { secret }),
      ...(devSecret === undefined ? {} : { devSecret }),
      ...(values.static === undefined ? {} : { staticDir: values.static }),
      limits,
      ...(flushTimeoutMs === undefined ? {} : { flushTimeoutMs }),
      ...(values.verbose ? { log } : {}),
      ...(values.schema === undefined ? {} : { schemaModule: values.schema }),
    });
  } catch (e) {
    fail(e instanceof MittsyncError || e instanceof Error ? e.message : String(e));
  }
  if (values.dev) {
    process.stderr.write(
      `\n  !! DEV MODE: ${relay.httpUrl}/v1/dev/token hands out read/write tokens for every bucket\n  !! to this relay's own pages. Never run it where anyone else can reach it.\n\n`,
    );
  }
  // Tests and scripts wait for this exact line (as for `mittsync relay`).
  process.stdout.write(`mittsync edge relay listening on ${relay.httpUrl} (sync: ${relay.url})\n`);

  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      process.stdout.write(`[mittsync info] ${signal}: disposing workerd (objects stay in ${data})\n`);
      relay.close().then(resolve, (e: unknown) => {
        process.stderr.write(`[mittsync error] shutdown failed ${String(e)}\n`);
        resolve();
      });
    };
    // First in line: Miniflare's own exit hook also listens, kills workerd (as dispose() does:
    // workerd keeps nothing in memory that an acked write needs) and exits with 128 + signal.
    process.prependOnceListener('SIGTERM', () => stop('SIGTERM'));
    process.prependOnceListener('SIGINT', () => stop('SIGINT'));
  });
}
