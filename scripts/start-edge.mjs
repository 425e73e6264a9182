#!/usr/bin/env node
// `npm run start:edge`: builds the demo, then serves it from the edge relay (the Cloudflare
// Worker and one Durable Object per bucket) on workerd, locally, in dev mode on 127.0.0.1.
//   npm run start:edge                        http://localhost:8788, data in ./.mittsync-edge
//   PORT=9000 npm run start:edge              another port
//   npm run start:edge -- --port 9000         the same; other options pass through too
//                                             (`-- --data /tmp/edge`, `-- --help`)
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const passed = process.argv.slice(2);

if (!passed.includes('--help') && !passed.includes('-h')) {
  const build = spawnSync('npm', ['run', 'build', '-w', '@mittsync/demo'], {
    cwd: root,
    stdio: 'inherit',
    shell: process.platform === 'win32',
  });
  if (build.error) throw build.error;
  if (build.status !== 0) process.exit(build.status ?? 1);
}

// The relay's CLI (`mittsync edge`, which bundles the Worker from its TypeScript sources with
// esbuild and runs it on workerd through Miniflare), found through its package.json.
const relayPkg = createRequire(import.meta.url).resolve('@mittsync/relay/package.json');
const pkg = /** @type {{ bin: { mittsync: string } }} */ (JSON.parse(readFileSync(relayPkg, 'utf8')));
const bin = join(dirname(relayPkg), pkg.bin.mittsync);

// Defaults first: the CLI keeps the last value of an option given twice, so arguments after
// `--` override them. The edge relay listens on 127.0.0.1 only: dev mode hands out tokens to
// anyone who can reach it. Its dev secret stays in the data directory (dev.json), so the tokens
// open tabs renew with survive a restart, as with `npm start`.
process.argv = [
  process.argv[0] ?? process.execPath,
  bin,
  'edge',
  '--port',
  process.env.PORT || '8788',
  '--data',
  './.mittsync-edge',
  '--dev',
  '--static',
  'apps/demo/dist',
  ...passed,
];
process.chdir(root);

// Ctrl-C: the CLI disposes workerd (Miniflare's exit hook, which also kills workerd, then ends
// the process with 130); the bucket objects stay in the data directory.
await import(bin);
