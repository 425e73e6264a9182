import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { unstable_readConfig } from 'wrangler';
import { API_PREFIX } from '../app';
import { COMPATIBILITY_DATE } from '../node/edge-local';
import * as worker from './worker';

// wrangler.jsonc is what `wrangler deploy` ships, and cannot be deployed from here: check that
// wrangler reads it as the Worker the tests run locally (same entry, date, object class and
// storage, assets routing), and that it carries no secret.
const here = dirname(fileURLToPath(import.meta.url));
const configPath = resolve(here, '../../wrangler.jsonc');
const config = unstable_readConfig({ config: configPath });

describe('wrangler.jsonc', () => {
  it('deploys the Worker entry the local runtime bundles, on its compatibility date', () => {
    expect(config.main).toBe(resolve(here, 'worker.ts'));
    expect(config.compatibility_date).toBe(COMPATIBILITY_DATE);
    expect(typeof worker.default.fetch).toBe('function');
  });

  it('binds BUCKETS to the exported BucketObject, created SQLite-backed', () => {
    expect(config.durable_objects.bindings).toEqual([{ name: 'BUCKETS', class_name: 'BucketObject' }]);
    expect(typeof worker.BucketObject).toBe('function');
    const migrations: { new_sqlite_classes?: string[]; new_classes?: string[] }[] = config.migrations;
    expect(migrations.flatMap((m) => m.new_sqlite_classes ?? [])).toEqual(['BucketObject']);
    expect(migrations.flatMap((m) => m.new_classes ?? [])).toEqual([]);
  });

  it('routes the relay paths to the Worker before the demo assets', () => {
    expect(config.assets?.binding).toBe('ASSETS');
    // The demo's build output (built by `npm run start:edge` and the e2e setup, not here).
    expect(resolve(dirname(configPath), config.assets?.directory ?? '')).toBe(
      resolve(here, '../../../../apps/demo/dist'),
    );
    expect(config.assets?.run_worker_first).toEqual([`${API_PREFIX}/*`, '/healthz', '/metrics']);
    expect(config.assets?.not_found_handling).toBe('single-page-application');
  });

  it('holds no secret and no dev mode in its vars', () => {
    const names = Object.keys(config.vars);
    for (const secret of ['MITTSYNC_SECRET', 'MITTSYNC_JWKS', 'MITTSYNC_DEV', 'MITTSYNC_DEV_SECRET']) {
      expect(names).not.toContain(secret);
    }
  });
});
