import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cpus, release, totalmem, type } from 'node:os';
import { join } from 'node:path';
import { root } from '../metrics/peer/harness';

/** What a report says about where and with what it ran. */

export interface Machine {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  os: string;
  node: string;
  chromium: string;
}

/** Packages whose versions the report gives: ours, then the compared systems'. */
const PACKAGES = [
  '@mittsync/core',
  '@mittsync/relay',
  '@mittsync/peer',
  'yjs',
  'y-websocket',
  '@y/websocket-server',
  'y-indexeddb',
  '@automerge/automerge',
  '@automerge/automerge-repo',
  '@automerge/automerge-repo-network-websocket',
  '@automerge/automerge-repo-storage-indexeddb',
  'playwright',
];

/** The installed version of each of {@link PACKAGES} (read from node_modules). */
export function versions(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of PACKAGES) {
    const file = join(root, 'node_modules', name, 'package.json');
    out[name] = existsSync(file)
      ? (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version
      : '-';
  }
  return out;
}

function osName(): string {
  try {
    const pretty = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1];
    if (pretty !== undefined) return `${pretty} (${type()} ${release()})`;
  } catch {
    // not Linux
  }
  return `${type()} ${release()}`;
}

/** The Chromium the peer benchmarks drive (launched once for its version). */
async function chromiumVersion(): Promise<string> {
  try {
    const { launch } = await import('../metrics/peer/browser');
    const browser = await launch();
    const v = browser.version();
    await browser.close();
    return v;
  } catch (e) {
    return `unknown (${e instanceof Error ? e.message.split('\n')[0] : String(e)})`;
  }
}

export async function machine(): Promise<Machine> {
  const cpu = cpus();
  return {
    cpuModel: cpu[0]?.model.trim() ?? 'unknown',
    cores: cpu.length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    os: osName(),
    node: process.version,
    chromium: await chromiumVersion(),
  };
}

/** The commit measured, marked when the work tree had changes. */
export function commit(): string {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { cwd: root, encoding: 'utf8' }).trim();
    const head = git('rev-parse', '--short', 'HEAD');
    return git('status', '--porcelain', '--untracked-files=no') === ''
      ? head
      : `${head}, with uncommitted changes`;
  } catch {
    return 'unknown';
  }
}
