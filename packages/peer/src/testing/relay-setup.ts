/**
 * Vitest global setup of the `peer-browser` project: starts the real Node relay (CLI, dev
 * mode, a temporary data directory) once for the run and provides its URL to the browser
 * tests (`inject('relayUrl')`).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

declare module 'vitest' {
  export interface ProvidedContext {
    relayUrl: string;
  }
}

const require = createRequire(import.meta.url);

/** A relay child process on a temporary directory. */
export interface StartedRelay {
  httpUrl: string;
  stop(): Promise<void>;
}

/** Starts the relay CLI (`mittsync relay --dev`) on a free port; resolves once it listens. */
export async function startRelay(extraArgs: string[] = []): Promise<StartedRelay> {
  const bin = join(dirname(require.resolve('@mittsync/relay/package.json')), 'bin', 'mittsync.mjs');
  const dir = mkdtempSync(join(tmpdir(), 'mittsync-peer-'));
  const limits = [
    'connectionsPerAddressPerMinute=1000000',
    'httpRequestsPerAddressPerMinute=1000000',
    'opsPerConnectionPerSecond=10000000',
  ];
  const child: ChildProcess = spawn(
    process.execPath,
    [
      bin,
      'relay',
      '--port',
      '0',
      '--data',
      dir,
      '--dev',
      '--cors',
      '*',
      ...limits.flatMap((l) => ['--limit', l]),
      ...extraArgs,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  child.stderr?.on('data', (d: Buffer) => {
    log = (log + d.toString()).slice(-4000);
  });
  const httpUrl = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m?.[1] !== undefined) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`relay exited with ${code} before listening:\n${log}`)));
  });
  return {
    httpUrl,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let relay: StartedRelay | undefined;

export async function setup({ provide }: { provide: (key: 'relayUrl', value: string) => void }) {
  relay = await startRelay();
  provide('relayUrl', relay.httpUrl);
}

export async function teardown() {
  await relay?.stop();
}
