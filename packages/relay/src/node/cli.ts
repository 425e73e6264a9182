import { parseArgs } from 'node:util';
import { MittsyncError } from '@mittsync/core';
import type { AuthOptions } from '../auth';
import { RELAY_LIMIT_NAMES, type RelayLimits } from '../limits';
import { startNodeRelay } from './server';

const USAGE = `usage: mittsync relay [options]
       mittsync edge [options]    the edge relay on workerd (mittsync edge --help)
       mittsync admin <command>   the admin API: buckets, replicas, control, reset (mittsync admin --help)

  --port <n>            TCP port (default 8787; 0 picks a free one)
  --host <addr>         interface to listen on (default 127.0.0.1; 0.0.0.0 for remote clients)
  --data <dir>          data directory, or :memory: (default ./.mittsync)
  --secret <s>          HS256 secret, at least 32 bytes (or env MITTSYNC_SECRET)
  --jwks <url>          verify tokens against this JWKS instead of a secret
  --audience <aud>      required token audience
  --issuer <iss>        required token issuer
  --dev                 dev mode: token endpoint handing out read/write * tokens to the relay's
                        own pages (demo only; own random secret, never --secret's)
  --dev-origin <origin> a dev server (http://localhost:5173) whose pages may get dev tokens too (repeatable)
  --dev-allow-remote    allow --dev on a non-loopback --host (anyone reaching it can read and write everything)
  --static <dir>        serve a built web app at /
  --cors <origin>       allow this browser origin to call the HTTP API (repeatable; * for any)
  --allow-query-token   also accept tokens in URLs (?token=), which get logged: old clients only
  --limit <name=value>  override a limit (repeatable): ${RELAY_LIMIT_NAMES.join(', ')}
  --tombstone-retain <n> hard cap: purge tombstones n seqs behind the head even if a replica
                        has not acknowledged them (default: none)
  --tombstone-retain-ms <ms> retention: a replica silent this long stops holding tombstones
                        (default 30 days)
  --max-resident <n>    bucket hosts kept in memory (default 1000)
  --flush-timeout <ms>  state flush wait for writers (default 5000)
`;

function fail(message: string): never {
  process.stderr.write(`mittsync: ${message}\n\n${USAGE}`);
  process.exit(2);
}

function int(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) fail(`${name} must be a non-negative integer`);
  return n;
}

/** Runs the CLI; returns when the relay has shut down after SIGTERM/SIGINT. */
export async function main(argv: string[]): Promise<void> {
  if (argv[0] === 'edge') {
    // Loaded only when asked for: Miniflare and esbuild are development tools.
    const { edgeMain } = await import('./edge-cli');
    return edgeMain(argv.slice(1));
  }
  if (argv[0] === 'admin') {
    const { adminMain } = await import('./admin-cli');
    process.exit(await adminMain(argv.slice(1)));
  }
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      data: { type: 'string' },
      secret: { type: 'string' },
      jwks: { type: 'string' },
      audience: { type: 'string' },
      issuer: { type: 'string' },
      dev: { type: 'boolean', default: false },
      'dev-origin': { type: 'string', multiple: true },
      'dev-allow-remote': { type: 'boolean', default: false },
      static: { type: 'string' },
      cors: { type: 'string', multiple: true },
      'allow-query-token': { type: 'boolean', default: false },
      limit: { type: 'string', multiple: true },
      'tombstone-retain': { type: 'string' },
      'tombstone-retain-ms': { type: 'string' },
      'max-resident': { type: 'string' },
      'flush-timeout': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  if (positionals[0] !== 'relay' || positionals.length > 1) fail('expected the command `relay`');
  const limits: Partial<RelayLimits> = {};
  for (const l of values.limit ?? []) {
    const m = /^([A-Za-z]+)=(\d+)$/.exec(l);
    if (m === null) fail(`--limit expects name=value, got ${l}`);
    limits[m[1] as keyof RelayLimits] = Number(m[2]);
  }
  for (const o of values['dev-origin'] ?? []) {
    if (!/^https?:\/\/[^/]+$/.test(o))
      fail(`--dev-origin expects an origin like http://localhost:5173, got ${o}`);
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
  const tombstoneRetainOps = int(values['tombstone-retain'], '--tombstone-retain');
  const tombstoneRetainMs = int(values['tombstone-retain-ms'], '--tombstone-retain-ms');
  const maxResidentBuckets = int(values['max-resident'], '--max-resident');
  const flushTimeoutMs = int(values['flush-timeout'], '--flush-timeout');
  let relay: Awaited<ReturnType<typeof startNodeRelay>>;
  try {
    relay = await startNodeRelay({
      port: int(values.port, '--port') ?? 8787,
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
    });
  } catch (e) {
    fail(e instanceof MittsyncError || e instanceof Error ? e.message : String(e));
  }
  if (values.dev) {
    process.stderr.write(
      `\n  !! DEV MODE: ${relay.httpUrl}/v1/dev/token hands out read/write tokens for every bucket\n  !! to this relay's own pages${values['dev-origin'] === undefined ? '' : ` and ${values['dev-origin'].join(', ')}`}.\n  !! Never run --dev where anyone else can reach it.${values['dev-allow-remote'] ? `\n  !! --dev-allow-remote: ANYONE WHO CAN REACH ${values.host} CAN READ AND WRITE EVERYTHING.` : ''}\n\n`,
    );
  }
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

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`mittsync: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
