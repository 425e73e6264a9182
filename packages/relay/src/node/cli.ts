import { isBucketName, MittsyncError } from '@mittsync/core';
import { Command, CommanderError, Option } from 'commander';
import { RELAY_LIMIT_NAMES } from '../limits';
import { intOption, UsageError } from './cli/options';

/** Collects a repeatable option's values. */
const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

/** The options every data command takes: where the relay is and the token to use. */
interface TargetOptions {
  relay: string;
  token?: string;
  dev?: boolean;
  quiet?: boolean;
}

function targetOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option('--relay <url>', "the relay's HTTP URL")
        .env('MITTSYNC_RELAY')
        .default('http://127.0.0.1:8787'),
    )
    .addOption(
      new Option('--token <jwt>', 'bearer token with the scopes the command needs').env('MITTSYNC_TOKEN'),
    )
    .option('--dev', "ask a dev relay's /v1/dev/token for a token (loopback dev relays only)");
}

function bucketArg(bucket: string): string {
  if (!isBucketName(bucket))
    throw new UsageError(
      `not a bucket name: ${bucket} (1-128 chars of [A-Za-z0-9_.:/-], starting with a letter or digit)`,
    );
  return bucket;
}

async function connect(o: TargetOptions, renew?: string) {
  const { RelayClient } = await import('./cli/client');
  return RelayClient.connect({ relay: o.relay, token: o.token, dev: o.dev, renew });
}

/** The `mittsync` command line: its commands, their options and their help. */
export function buildProgram(): Command {
  const program = new Command('mittsync')
    .description('Mittsync: run a relay, and export, import or inspect buckets through one')
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(`mittsync: ${str.replace(/^error: /, '')}`) })
    .addHelpText(
      'after',
      '\nAdmin API (an admin-scoped token): mittsync admin buckets|bucket|replica|set|allow|deny|reset (mittsync admin --help)',
    );

  program
    .command('relay')
    .description('run the Node relay (SQLite files, WebSockets and the HTTP API)')
    .option('--port <n>', 'TCP port (default 8787; 0 picks a free one)')
    .option('--host <addr>', 'interface to listen on (default 127.0.0.1; 0.0.0.0 for remote clients)')
    .option('--data <dir>', 'data directory, or :memory: (default ./.mittsync)')
    .option('--secret <s>', 'HS256 secret, at least 32 bytes (or env MITTSYNC_SECRET)')
    .option('--jwks <url>', 'verify tokens against this JWKS instead of a secret')
    .option('--audience <aud>', 'required token audience')
    .option('--issuer <iss>', 'required token issuer')
    .option(
      '--dev',
      "dev mode: token endpoint handing out read/write * tokens to the relay's own pages (demo only; own random secret, never --secret's)",
    )
    .option(
      '--dev-origin <origin>',
      'a dev server (http://localhost:5173) whose pages may get dev tokens too (repeatable)',
      collect,
    )
    .option(
      '--dev-allow-remote',
      'allow --dev on a non-loopback --host (anyone reaching it can read and write everything)',
    )
    .option('--static <dir>', 'serve a built web app at /')
    .option(
      '--cors <origin>',
      'allow this browser origin to call the HTTP API (repeatable; * for any)',
      collect,
    )
    .option('--allow-query-token', 'also accept tokens in URLs (?token=), which get logged: old clients only')
    .option('--limit <name=value>', `override a limit (repeatable): ${RELAY_LIMIT_NAMES.join(', ')}`, collect)
    .option(
      '--tombstone-retain <n>',
      'hard cap: purge tombstones n seqs behind the head even if a replica has not acknowledged them (default: none)',
    )
    .option(
      '--tombstone-retain-ms <ms>',
      'retention: a replica silent this long stops holding tombstones (default 30 days)',
    )
    .option('--max-resident <n>', 'bucket hosts kept in memory (default 1000)')
    .option('--flush-timeout <ms>', 'state flush wait for writers (default 5000)')
    .option('--page-cache-mb <mb>', 'memory for catch-up pages kept for the next joins (default 64; 0: off)')
    .option(
      '--schema <file>',
      'an ES module exporting schemas by bucket pattern ({ "todo:*": schema }); pushes they refuse are rejected per op with INVALID_VALUE (docs/schemas.md)',
    )
    .action(async (o) => {
      const { runRelay } = await import('./relay-cli');
      await runRelay(o);
    });

  program
    .command('edge')
    .description('run the edge relay (the Cloudflare Worker and its Durable Objects) locally on workerd')
    .option('--port <n>', 'TCP port on 127.0.0.1 (default 8788; 0 picks a free one)')
    .option('--data <dir>', 'directory the bucket objects persist in (default ./.mittsync-edge)')
    .option('--secret <s>', 'HS256 secret, at least 32 bytes (or env MITTSYNC_SECRET)')
    .option(
      '--dev',
      "dev mode: /v1/dev/token hands out read/write * tokens to the relay's own pages (demo only; own random secret kept in <data>/dev.json)",
    )
    .option('--static <dir>', 'serve a built web app at / (Workers static assets)')
    .option('--limit <name=value>', `override a limit (repeatable): ${RELAY_LIMIT_NAMES.join(', ')}`, collect)
    .option('--flush-timeout <ms>', 'state flush wait for writers (default 5000)')
    .option('--page-cache-mb <mb>', 'memory for catch-up pages kept for the next joins (default 64; 0: off)')
    .option(
      '--schema <file>',
      'a module exporting schemas by bucket pattern, bundled into the Worker (registered with setRelaySchemas; see docs/schemas.md)',
    )
    .option('--verbose', "print workerd's output")
    .action(async (o) => {
      // Loaded only when asked for: Miniflare and esbuild are development tools.
      const { runEdge } = await import('./edge-cli');
      await runEdge(o);
    });

  targetOptions(
    program
      .command('export')
      .description(
        'write a bucket\'s live entries as NDJSON ({"key":...,"value":...} per line, in key order)',
      )
      .argument('<bucket>', 'the bucket', bucketArg)
      .option('--out <file>', 'write to this file (default: stdout)')
      .option('--resume', 'continue --out after its last complete line (an interrupted export)')
      .option('--page-size <n>', 'entries per page request (default 10000; the relay caps it)')
      .option('--max <n>', 'stop after n entries (resume later with --resume)')
      .option('--quiet', 'no progress, only the summary line'),
  ).action(
    async (
      bucket: string,
      o: TargetOptions & { out?: string; resume?: boolean; pageSize?: string; max?: string },
    ) => {
      const client = await connect(o);
      const { runExport } = await import('./cli/export');
      const pageSize = intOption(o.pageSize, '--page-size');
      await runExport(client, {
        bucket,
        out: o.out,
        resume: o.resume === true,
        max: intOption(o.max, '--max'),
        quiet: o.quiet === true,
        ...(pageSize === undefined ? {} : { pageSize }),
      });
    },
  );

  targetOptions(
    program
      .command('import')
      .description(
        'write NDJSON or CSV records into a bucket, resumably (a checkpoint file keeps what the relay acked)',
      )
      .argument('<bucket>', 'the bucket', bucketArg)
      .argument(
        '<file>',
        'NDJSON ({"key":...,"value":...} or {"key":...,"deleted":true} per line) or CSV with a header row',
      )
      .addOption(
        new Option('--format <format>', 'input format (default: csv for *.csv, else ndjson)').choices([
          'ndjson',
          'csv',
        ]),
      )
      .option('--key <column>', 'CSV: the key column (default "key", else the first column)')
      .option('--cast', 'CSV: numbers and true/false become JSON numbers and booleans (default: strings)')
      .option('--checkpoint <file>', 'where progress is kept (default <file>.<bucket>.mittsync-import.json)')
      .option('--restart', 'ignore the checkpoint and import every record again')
      .option('--batch <n>', 'records per push (default and at most 2000)')
      .option('--max <n>', 'stop after n records (run again to continue)')
      .option('--quiet', 'no progress, only the summary line'),
  ).action(
    async (
      bucket: string,
      file: string,
      o: TargetOptions & {
        format?: 'ndjson' | 'csv';
        key?: string;
        cast?: boolean;
        checkpoint?: string;
        restart?: boolean;
        batch?: string;
        max?: string;
      },
    ) => {
      const { checkpointDevToken, runImport } = await import('./cli/import');
      // A dev import resumes as the replica it wrote as: its originSeqs continue.
      const renew =
        o.dev === true && o.restart !== true ? checkpointDevToken(file, bucket, o.checkpoint) : undefined;
      const client = await connect(o, renew);
      const { formatOf } = await import('./cli/records');
      const batchOps = intOption(o.batch, '--batch');
      if (batchOps === 0) throw new UsageError('--batch must be at least 1');
      await runImport(client, o.relay, {
        bucket,
        file,
        format: o.format ?? formatOf(file),
        csv: { keyColumn: o.key, cast: o.cast === true },
        checkpoint: o.checkpoint,
        restart: o.restart === true,
        max: intOption(o.max, '--max'),
        quiet: o.quiet === true,
        ...(batchOps === undefined ? {} : { batchOps }),
      });
    },
  );

  targetOptions(
    program
      .command('inspect')
      .description("print a bucket's size, checkpoint (head seq, epoch), replicas and the relay's health")
      .argument('<bucket>', 'the bucket', bucketArg)
      .option('--json', 'print it as JSON'),
  ).action(async (bucket: string, o: TargetOptions & { json?: boolean }) => {
    const client = await connect(o);
    const { formatInspect, runInspect } = await import('./cli/inspect');
    const r = await runInspect(client, bucket);
    process.stdout.write(o.json === true ? `${JSON.stringify(r, null, 2)}\n` : formatInspect(o.relay, r));
  });

  return program;
}

/**
 * Runs the CLI and resolves with the exit code: 0, 1 for a failed command (one line on
 * stderr: `mittsync <command>: <what went wrong>`), 2 for a usage error. `relay` and `edge`
 * resolve once the relay has shut down after SIGTERM or SIGINT.
 */
export async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'admin') {
    // The admin API's commands parse their own arguments (mittsync admin --help).
    const { adminMain } = await import('./admin-cli');
    return adminMain(argv.slice(1));
  }
  const program = buildProgram();
  const command = argv.find((a) => !a.startsWith('-')) ?? '';
  const prefix = ['relay', 'edge', 'export', 'import', 'inspect'].includes(command)
    ? `mittsync ${command}`
    : 'mittsync';
  if (argv.length === 0) {
    process.stderr.write(`${prefix}: expected a command\n\n${program.helpInformation()}`);
    return 2;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    if (e instanceof UsageError) {
      process.stderr.write(`${prefix}: ${e.message} (${prefix} --help lists the options)\n`);
      return 2;
    }
    if (e instanceof MittsyncError) {
      process.stderr.write(`${prefix}: ${e.message}\n`);
      return 1;
    }
    process.stderr.write(`${prefix}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return 1;
  }
}

main(process.argv.slice(2)).then((code) => process.exit(code));
