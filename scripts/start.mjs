#!/usr/bin/env node
// `npm start`: builds the demo, then serves it from a dev-mode relay on the loopback interface.
//   npm start                        http://localhost:8787, data in ./.mittsync
//   PORT=9000 npm start              another port
//   npm start -- --port 9000         the same; other relay options pass through too
//                                    (`npm start -- --data /tmp/demo`, `npm start -- --help`)
//   npm run start:react-todo         the React example (apps/react-todo) instead of the demo
// `npm run start:edge` (`--edge`): the same with the edge relay (the Cloudflare Worker and one
// Durable Object per bucket) on workerd, locally: http://localhost:8788, data in ./.mittsync-edge.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const edge = process.argv[2] === '--edge';
const passed = process.argv.slice(edge ? 3 : 2);

// Another app to serve (`--static <dir>`, as `npm run start:react-todo` passes) needs no demo.
if (!passed.includes('--help') && !passed.includes('-h') && !passed.includes('--static')) {
  const build = spawnSync('npm', ['run', 'build', '-w', '@mittsync/demo'], {
    cwd: root,
    stdio: 'inherit',
    shell: process.platform === 'win32',
  });
  if (build.error) throw build.error;
  if (build.status !== 0) process.exit(build.status ?? 1);
}

// The relay's own CLI (the `mittsync` bin of @mittsync/relay), found through its package.json
// so this keeps working wherever the package keeps its sources.
const relayPkg = createRequire(import.meta.url).resolve('@mittsync/relay/package.json');
const pkg = /** @type {{ bin: { mittsync: string } }} */ (JSON.parse(readFileSync(relayPkg, 'utf8')));
const bin = join(dirname(relayPkg), pkg.bin.mittsync);

// Defaults first: the CLI keeps the last value of an option given twice, so arguments after
// `--` override them. The CLI's default host (127.0.0.1) stays: `--dev` hands out tokens to
// anyone who can reach the relay. The dev secret stays in the data directory (dev.json), so
// the tokens open tabs renew with survive a restart.
process.argv = [
  process.argv[0] ?? process.execPath,
  bin,
  edge ? 'edge' : 'relay',
  '--port',
  process.env.PORT || (edge ? '8788' : '8787'),
  '--data',
  edge ? './.mittsync-edge' : './.mittsync',
  '--dev',
  '--static',
  'apps/demo/dist',
  ...passed,
];
process.chdir(root);

// The relay runs in this process and closes gracefully on the first SIGINT. Under `npm start`
// one Ctrl-C arrives twice (from the terminal and forwarded by npm): a second SIGINT within a
// second is that copy and is ignored; a later one (Ctrl-C pressed again) quits at once, and so
// does one that comes before the relay listens for it.
// The edge relay instead leaves Ctrl-C to Miniflare, which kills workerd and ends the process
// with 130; the bucket objects stay in the data directory.
let firstSigint = 0;
process.on('SIGINT', () => {
  if (edge) return; // Miniflare's own handler ends the process.
  const relayHandles = process.listenerCount('SIGINT') > 1;
  if (firstSigint === 0 && relayHandles) firstSigint = Date.now();
  else if (firstSigint === 0 || Date.now() - firstSigint > 1000) process.exit(130);
});

await import(bin);
