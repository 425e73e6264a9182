import type { ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { spawnRelayProcess } from '@mittsync/relay/node';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const DEMO_DIST = join(ROOT, 'apps', 'demo', 'dist');
export const REACT_TODO_DIST = join(ROOT, 'apps', 'react-todo', 'dist');

/** Limits raised past what a test's reconnect storms and bulk seeding need. */
const LIMITS = {
  connectionsPerAddressPerMinute: 100_000,
  httpRequestsPerAddressPerMinute: 1_000_000,
  opsPerConnectionPerSecond: 10_000_000,
};

/**
 * The state flush waits this long for writers (default 5 s): a loaded CI machine can be slower
 * than that to answer a marker, and a writer the flush gave up on is not covered, which the
 * join scenarios would report as a failure of the machine rather than of the code.
 */
const FLUSH_TIMEOUT_MS = '30000';

/** A free TCP port on the loopback interface. */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => res(port));
    });
  });
}

/**
 * Which relay a test runs against: the Node relay (`mittsync relay`: SQLite files, `ws`) or the
 * edge relay (`mittsync edge`: the Cloudflare Worker and one Durable Object per bucket, on
 * workerd through Miniflare). Both serve the demo and dev tokens on one loopback origin.
 */
export type RelayRuntime = 'node' | 'edge';

/**
 * The real relay as a child process (the CLI in dev mode, serving the built demo), on a
 * fixed port and data directory so it can be SIGKILLed and started again where it was.
 */
export class RelayProcess {
  private child: ChildProcess | null = null;
  private log = '';
  private starts = 0;

  private constructor(
    readonly runtime: RelayRuntime,
    readonly port: number,
    readonly dataDir: string,
    private readonly extraArgs: string[],
  ) {}

  /**
   * Starts a relay on a new data directory: empty, or a copy of `template` (a data directory
   * a stopped relay of the same runtime left, e.g. the 100k-row bucket seeded once per worker).
   */
  static async start(
    opts: { runtime?: RelayRuntime; template?: string; args?: string[] } = {},
  ): Promise<RelayProcess> {
    const port = await freePort();
    const dataDir = mkdtempSync(join(tmpdir(), 'mittsync-e2e-'));
    if (opts.template !== undefined) cpSync(opts.template, dataDir, { recursive: true });
    const relay = new RelayProcess(opts.runtime ?? 'node', port, dataDir, opts.args ?? []);
    await relay.launch();
    return relay;
  }

  /** `http://127.0.0.1:<port>`: the demo and the HTTP API. */
  get httpUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** `ws://127.0.0.1:<port>/v1/sync` */
  get syncUrl(): string {
    return `ws://127.0.0.1:${this.port}/v1/sync`;
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The last lines the relay printed (attached to failing tests). */
  get output(): string {
    return this.log;
  }

  private async launch(): Promise<void> {
    this.starts++;
    const note = (chunk: string) => {
      this.log = (this.log + chunk).slice(-20_000);
    };
    try {
      const relay = await spawnRelayProcess({
        command: this.runtime === 'edge' ? 'edge' : 'relay',
        port: this.port,
        data: this.dataDir,
        dev: true,
        // Dev mode keeps its secret in the data directory (dev.json): tokens outlive a restart.
        limits: LIMITS,
        args: ['--static', DEMO_DIST, '--flush-timeout', FLUSH_TIMEOUT_MS, ...this.extraArgs],
        cwd: ROOT,
        onOutput: note,
      });
      this.child = relay.child;
    } catch (e) {
      throw new Error(`start #${this.starts}: ${e instanceof Error ? e.message : String(e)}`);
    }
    this.log += `--- relay start #${this.starts} listening\n`;
  }

  /** Kills the relay at once (SIGKILL: no shutdown, no final commit). Node relay only. */
  async kill(): Promise<void> {
    const child = this.child;
    if (child === null || !this.running) return;
    if (this.runtime === 'edge') {
      // SIGKILL reaches the Node process only: the workerd it started would keep the port and
      // the objects' files. The edge's crash and restart cases are tested in packages/relay.
      throw new Error('SIGKILL is not supported on the edge relay: its workerd would outlive it');
    }
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    this.log += '--- relay SIGKILLed\n';
  }

  /** Starts it again on the same port and data directory. */
  async restart(): Promise<void> {
    if (this.running) await this.kill();
    await this.launch();
  }

  /** Graceful stop (SIGTERM: commits what is queued, closes sockets with 1012). */
  async stop(): Promise<void> {
    const child = this.child;
    if (child !== null && this.running) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    this.child = null;
  }

  removeData(): void {
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  /** Stops it and removes its data. */
  async dispose(): Promise<void> {
    await this.stop();
    this.removeData();
  }
}
