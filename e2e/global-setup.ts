import { spawnSync } from 'node:child_process';
import { ROOT } from './support/relay-process';

/** Builds the demo once: every test's relay serves `apps/demo/dist`. */
export default function globalSetup(): void {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const r = spawnSync(npm, ['run', 'build', '-w', '@mittsync/demo'], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`building the demo failed (exit ${r.status ?? r.signal})`);
}
