import { spawnSync } from 'node:child_process';
import { ROOT } from './support/relay-process';

/**
 * Builds the web apps once: every test's relay serves `apps/demo/dist`, and the React example's
 * scenario serves `apps/react-todo/dist`.
 */
export default function globalSetup(): void {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  for (const app of ['@mittsync/demo', '@mittsync/react-todo']) {
    const r = spawnSync(npm, ['run', 'build', '-w', app], { cwd: ROOT, stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`building ${app} failed (exit ${r.status ?? r.signal})`);
  }
}
