import { spawnSync } from 'node:child_process';
import { seedItem } from '../apps/demo/src/inventory';
import { seedRelay } from './support/relay-data';
import { RelayProcess, ROOT } from './support/relay-process';
import { SEEDED } from './support/seeded';

/**
 * Builds the demo (every test's relay serves `apps/demo/dist`), then seeds the 100k-row bucket
 * once: a relay writes it, stops, and tests that need it start their relay on a copy of its
 * data directory instead of seeding again.
 */
export default async function globalSetup(): Promise<() => void> {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const r = spawnSync(npm, ['run', 'build', '-w', '@mittsync/demo'], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`building the demo failed (exit ${r.status ?? r.signal})`);

  const relay = await RelayProcess.start();
  await seedRelay(relay, SEEDED.bucket, SEEDED.rows, (n) => seedItem(n, 'seeder'));
  await relay.stop();
  process.env.MITTSYNC_E2E_SEEDED = relay.dataDir;
  return () => relay.removeData();
}
