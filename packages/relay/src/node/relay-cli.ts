import { MittsyncError } from '@mittsync/core';
import type { AuthOptions } from '../auth';
import { intOption, limitOptions, UsageError } from './cli/options';
import { loadSchemaModule } from './schema-module';
import { startNodeRelay } from './server';

/** `mittsync relay`'s options, as the command line parser hands them over. */
export interface RelayCommandOptions {
  port?: string;
  host?: string;
  data?: string;
  secret?: string;
  jwks?: string;
  audience?: string;
  issuer?: string;
  dev?: boolean;
  devOrigin?: string[];
  devAllowRemote?: boolean;
  static?: string;
  cors?: string[];
  allowQueryToken?: boolean;
  limit?: string[];
  tombstoneRetain?: string;
  tombstoneRetainMs?: string;
  maxResident?: string;
  flushTimeout?: string;
  pageCacheMb?: string;
  schema?: string;
}

function fail(message: string): never {
  throw new UsageError(message);
}

/**
 * `mittsync relay`: starts the Node relay and returns when it has shut down after SIGTERM or
 * SIGINT.
 */
export async function runRelay(o: RelayCommandOptions): Promise<void> {
  const values = {
    ...o,
    dev: o.dev === true,
    'dev-origin': o.devOrigin,
    'dev-allow-remote': o.devAllowRemote === true,
    'allow-query-token': o.allowQueryToken === true,
    'tombstone-retain': o.tombstoneRetain,
    'tombstone-retain-ms': o.tombstoneRetainMs,
    'max-resident': o.maxResident,
    'flush-timeout': o.flushTimeout,
    'page-cache-mb': o.pageCacheMb,
  };
  const limits = limitOptions(values.limit);
  for (const origin of values['dev-origin'] ?? []) {
    if (!/^https?:\/\/[^/]+$/.test(origin))
      fail(`--dev-origin expects an origin like http://localhost:5173, got ${origin}`);
  }
  if (!values.dev && (values['dev-origin'] !== undefined || values['dev-allow-remote']))
    fail('--dev-origin and --dev-allow-remote only apply with --dev');
  const secret = values.secret ?? process.env.MITTSYNC_SECRET;
  let auth: AuthOptions | undefined;
  if (values.jwks !== undefined) auth = { jwks: values.jwks };
  else if (secret !== undefined) auth = { secret };
  if (auth !== undefined) {
    if (values.audience !== undefined) auth.audience = values.audience;
    if (values.issuer !== undefined) auth.issuer = values.issuer;
  } else if (!values.dev) fail('no auth: pass --secret (or MITTSYNC_SECRET), --jwks, or --dev for the demo');

  const log = (level: string, message: string, detail?: Record<string, unknown>) => {
    const line = `[mittsync ${level}] ${message}${detail === undefined ? '' : ` ${JSON.stringify(detail)}`}\n`;
    (level === 'info' ? process.stdout : process.stderr).write(line);
  };
  const tombstoneRetainOps = intOption(values['tombstone-retain'], '--tombstone-retain');
  const tombstoneRetainMs = intOption(values['tombstone-retain-ms'], '--tombstone-retain-ms');
  const maxResidentBuckets = intOption(values['max-resident'], '--max-resident');
  const flushTimeoutMs = intOption(values['flush-timeout'], '--flush-timeout');
  const pageCacheMb = intOption(values['page-cache-mb'], '--page-cache-mb');
  let relay: Awaited<ReturnType<typeof startNodeRelay>>;
  try {
    const schemas = values.schema === undefined ? undefined : await loadSchemaModule(values.schema);
    relay = await startNodeRelay({
      ...(schemas === undefined ? {} : { schemas }),
      port: intOption(values.port, '--port') ?? 8787,
      host: values.host ?? '127.0.0.1',
      data: values.data ?? './.mittsync',
      dev: values.dev,
      ...(values['dev-origin'] === undefined ? {} : { devOrigins: values['dev-origin'] }),
      ...(values['dev-allow-remote'] ? { devAllowRemote: true } : {}),
      limits,
      log,
      ...(auth === undefined ? {} : { auth }),
      ...(values.static === undefined ? {} : { staticDir: values.static }),
      ...(values.cors === undefined
        ? {}
        : { corsOrigins: values.cors.includes('*') ? ('*' as const) : values.cors }),
      ...(values['allow-query-token'] ? { allowQueryToken: true } : {}),
      ...(tombstoneRetainOps === undefined ? {} : { tombstoneRetainOps }),
      ...(tombstoneRetainMs === undefined ? {} : { tombstoneRetainMs }),
      ...(maxResidentBuckets === undefined ? {} : { maxResidentBuckets }),
      ...(flushTimeoutMs === undefined ? {} : { flushTimeoutMs }),
      ...(pageCacheMb === undefined ? {} : { pageCacheMb }),
    });
  } catch (e) {
    fail(e instanceof MittsyncError || e instanceof Error ? e.message : String(e));
  }
  if (values.dev) {
    process.stderr.write(
      `\n  !! DEV MODE: ${relay.httpUrl}/v1/dev/token hands out read/write tokens for every bucket\n  !! to this relay's own pages${values['dev-origin'] === undefined ? '' : ` and ${values['dev-origin'].join(', ')}`}.\n  !! Never run --dev where anyone else can reach it.${values['dev-allow-remote'] ? `\n  !! --dev-allow-remote: ANYONE WHO CAN REACH ${values.host} CAN READ AND WRITE EVERYTHING.` : ''}\n\n`,
    );
  }
  if (values.schema !== undefined) log('info', `checking pushes against the schemas of ${values.schema}`);
  // Tests and scripts wait for this exact line.
  process.stdout.write(`mittsync relay listening on ${relay.httpUrl} (sync: ${relay.url})\n`);

  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log('info', `${signal}: finishing commits and closing sockets with 1012`);
      relay.close().then(resolve, (e: unknown) => {
        log('error', 'shutdown failed', { message: String(e) });
        resolve();
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
