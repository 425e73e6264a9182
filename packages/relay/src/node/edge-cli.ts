import { MittsyncError } from '@mittsync/core';
import { resolveLimits } from '../limits';
import { intOption, limitOptions, UsageError } from './cli/options';
import { checkDataOutsideStatic, loadDevState } from './dev-state';
import { type EdgeRelay, startEdgeRelay } from './edge-local';

/** `mittsync edge`'s options, as the command line parser hands them over. */
export interface EdgeCommandOptions {
  port?: string;
  data?: string;
  secret?: string;
  dev?: boolean;
  static?: string;
  limit?: string[];
  flushTimeout?: string;
  schema?: string;
  verbose?: boolean;
}

function fail(message: string): never {
  throw new UsageError(message);
}

/**
 * `mittsync edge`: the edge relay on workerd for trying the demo on the edge runtime
 * (`npm run start:edge`) and for the end-to-end tests, which start it as a child process like
 * the Node relay. Prints the same `listening on <url>` line; SIGTERM or SIGINT disposes
 * workerd (objects stay on disk).
 */
export async function runEdge(o: EdgeCommandOptions): Promise<void> {
  const values = { ...o, dev: o.dev === true, verbose: o.verbose === true, 'flush-timeout': o.flushTimeout };
  const int = intOption;
  const limits = limitOptions(values.limit);
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
      ...(values.schema === undefined ? {} : { schemaModule: values.schema }),
      ...(values.verbose ? { log } : {}),
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
