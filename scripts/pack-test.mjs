#!/usr/bin/env node
// The publishable packages, as someone outside the monorepo gets them: builds and packs
// @mittsync/core, /peer, /relay and /react (`npm pack`), installs the tarballs into a new project in a
// temporary directory, then, in that project: starts the relay with the packed `mittsync` CLI,
// has two Node replicas of the packed core sync through it (one writes, the other joins and
// reads), exports the bucket with the packed CLI, imports the peer's page API, and type-checks
// a consumer with Node's own module resolution (`nodenext`). Prints each tarball's size.
//
// better-sqlite3 is installed without its build script and given the monorepo's compiled
// addon (the same version, pinned), so this takes seconds rather than a from-source build.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const work = mkdtempSync(join(tmpdir(), 'mittsync-pack-'));
const keep = process.argv.includes('--keep');

/** @param {string} cmd @param {string[]} args @param {string} cwd */
function run(cmd, args, cwd) {
  const r = spawnSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status ?? r.signal}`);
  return r.stdout;
}

/** The version of `name` the monorepo has installed. @param {string} name */
const versionOf = (name) =>
  JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')).version;

try {
  // 1. Pack (each package's prepack builds its dist/).
  const packed =
    /** @type {{ name: string, filename: string, size: number, unpackedSize: number, entryCount: number }[]} */ (
      JSON.parse(
        run(
          npm,
          [
            'pack',
            '--json',
            '--pack-destination',
            work,
            '-w',
            '@mittsync/core',
            '-w',
            '@mittsync/peer',
            '-w',
            '@mittsync/relay',
            '-w',
            '@mittsync/react',
          ],
          root,
        ),
      )
    );
  for (const p of packed) {
    console.log(
      `packed ${p.name}: ${(p.size / 1024).toFixed(1)} kB (${(p.unpackedSize / 1024).toFixed(1)} kB unpacked, ${p.entryCount} files)`,
    );
  }

  // 2. A fresh project that installs the tarballs.
  const app = join(work, 'app');
  const sqlite = JSON.parse(
    readFileSync(join(root, 'node_modules', 'better-sqlite3', 'package.json'), 'utf8'),
  );
  writeFileSync(
    join(work, 'package.json'),
    JSON.stringify({
      name: 'pack-test',
      private: true,
      type: 'module',
      overrides: { 'better-sqlite3': sqlite.version },
    }),
  );
  run(
    npm,
    [
      'install',
      '--prefer-offline',
      '--ignore-scripts',
      '--no-audit',
      '--no-fund',
      ...packed.map((p) => join(work, p.filename)),
      // React for @mittsync/react (its peer dependency), at the monorepo's versions.
      `react@${versionOf('react')}`,
      `@types/react@${versionOf('@types/react')}`,
    ],
    work,
  );
  cpSync(
    join(root, 'node_modules', 'better-sqlite3', 'build'),
    join(work, 'node_modules', 'better-sqlite3', 'build'),
    {
      recursive: true,
    },
  );
  cpSync(join(root, 'scripts', 'pack-test'), app, { recursive: true });

  // 3. The relay from the packed CLI, a short sync from the packed core, the packed CLI's export.
  const secret = 'pack-test-secret-pack-test-secret-pack';
  const relay = spawn(
    join(work, 'node_modules', '.bin', 'mittsync'),
    ['relay', '--port', '0', '--data', join(work, 'data')],
    {
      cwd: work,
      env: { ...process.env, MITTSYNC_SECRET: secret },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  try {
    const url = await new Promise((resolve, reject) => {
      let out = '';
      relay.stdout.on('data', (d) => {
        out += d.toString();
        const m = /listening on (http:\/\/\S+)/.exec(out);
        if (m) resolve(m[1]);
      });
      relay.once('exit', (code) =>
        reject(new Error(`the packed relay exited (${code}) before listening:\n${out}`)),
      );
    });
    execFileSync(process.execPath, [join(app, 'sync.mjs'), String(url), secret], {
      cwd: work,
      stdio: 'inherit',
    });
  } finally {
    relay.kill('SIGTERM');
  }

  // 4. Types as a project with Node's module resolution sees them, every declaration file
  // checked (Node's types from the monorepo: msgpackr's declarations name Buffer).
  const tsconfig = {
    compilerOptions: {
      module: 'nodenext',
      moduleResolution: 'nodenext',
      target: 'es2022',
      lib: ['ES2022', 'DOM'],
      typeRoots: [join(root, 'node_modules', '@types')],
      types: ['node'],
      strict: true,
      noEmit: true,
      skipLibCheck: false,
    },
    files: ['consumer.ts'],
  };
  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify(tsconfig));
  const tsc = spawnSync(
    process.execPath,
    [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(app, 'tsconfig.json')],
    {
      cwd: work,
      encoding: 'utf8',
    },
  );
  if (tsc.status !== 0)
    throw new Error(`the packed declarations do not type-check:\n${tsc.stdout}${tsc.stderr}`);
  console.log('pack test: the packed packages install, import, type-check and sync');
} finally {
  if (keep) console.log(`kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}
