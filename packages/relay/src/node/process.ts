import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MittsyncError } from '@mittsync/core';

/** The CLI entry of this package (`mittsync`). */
export const RELAY_BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'mittsync.mjs');

/** Options of {@link spawnRelayProcess}. */
export interface RelayProcessOptions {
  /**
   * `relay` (the Node relay, default) or `edge` (the edge relay on workerd, `mittsync edge`,
   * which takes `port`, `data`, `dev`, `secret`, `limits` and `--static`/`--flush-timeout`).
   */
  command?: 'relay' | 'edge';
  /** TCP port; 0 (the default) picks a free one. */
  port?: number;
  /** Data directory; default a new temporary one, removed by `stop()`. */
  data?: string;
  /** Dev mode (`--dev`: a random secret and the token endpoint). */
  dev?: boolean;
  /** HS256 secret, passed as `MITTSYNC_SECRET` (not on the command line). */
  secret?: string;
  /** Limits as `name=value` (see `RELAY_LIMIT_NAMES`). */
  limits?: Record<string, number>;
  /** More CLI arguments (`--static dir`, `--cors *`...). */
  args?: string[];
  /** Arguments for Node itself, before the script (`--cpu-prof`...). */
  nodeArgs?: string[];
  /** Working directory of the process. */
  cwd?: string;
  /** Everything it prints, stdout and stderr, as it comes (for logs of failing tests). */
  onOutput?: (chunk: string) => void;
}

/** A relay running as a child process. */
export interface RelayProcess {
  child: ChildProcess;
  /** `http://127.0.0.1:<port>` */
  httpUrl: string;
  /** `ws://127.0.0.1:<port>/v1/sync` */
  url: string;
  dataDir: string;
  /** The last few kB of its stderr. */
  log(): string;
  /** SIGTERM (graceful: commits finish, sockets close with 1012), then removes a temporary data directory. */
  stop(): Promise<void>;
}

/**
 * Runs the relay CLI (`mittsync relay`, or `mittsync edge`) as a child process and resolves once
 * it listens: for tests that kill it, benchmarks that measure it from outside, and tools.
 */
export async function spawnRelayProcess(opts: RelayProcessOptions = {}): Promise<RelayProcess> {
  const temporary = opts.data === undefined;
  const dataDir = opts.data ?? mkdtempSync(join(tmpdir(), 'mittsync-relay-'));
  const args = [
    ...(opts.nodeArgs ?? []),
    RELAY_BIN,
    opts.command ?? 'relay',
    '--port',
    String(opts.port ?? 0),
    '--data',
    dataDir,
    ...(opts.dev === true ? ['--dev'] : []),
    ...Object.entries(opts.limits ?? {}).flatMap(([name, value]) => ['--limit', `${name}=${value}`]),
    ...(opts.args ?? []),
  ];
  const child = spawn(process.execPath, args, {
    ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
    env: { ...process.env, ...(opts.secret === undefined ? {} : { MITTSYNC_SECRET: opts.secret }) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stderr?.on('data', (d: Buffer) => {
    log = (log + d.toString()).slice(-8000);
    opts.onOutput?.(d.toString());
  });
  // Drained all along (a full pipe would block the relay); passed on when asked.
  child.stdout?.on('data', (d: Buffer) => opts.onOutput?.(d.toString()));
  const httpUrl = await new Promise<string>((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m?.[1] !== undefined) {
        child.stdout?.off('data', onData);
        resolve(m[1]);
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code, signal) =>
      reject(
        new MittsyncError('CLOSED', `relay exited (${code ?? signal}) before listening:\n${out}${log}`, {
          detail: { exitCode: code, signal },
        }),
      ),
    );
  });
  return {
    child,
    httpUrl,
    url: `${httpUrl.replace(/^http/, 'ws')}/v1/sync`,
    dataDir,
    log: () => log,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      if (temporary) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
