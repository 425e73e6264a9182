#!/usr/bin/env node
// Builds the publishable packages into their dist/ folders: ESM JavaScript bundled per entry
// point by esbuild (shared code split into chunks, dependencies left as imports) and type
// declarations by tsc. Inside the monorepo nothing needs this: every tool resolves the
// packages' "source" export condition to their TypeScript. `npm pack` runs it (prepack).
//   node scripts/build-packages.mjs               core, peer, relay (in dependency order)
//   node scripts/build-packages.mjs relay         one package (after the ones it depends on)
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Each package: the esbuild platform, and entry points besides its exports (the CLI). The
 * order is the dependency order: a package's declarations read those of the ones before it.
 * @type {Record<string, { platform: 'neutral' | 'browser' | 'node', extra?: string[] }>}
 */
const PACKAGES = {
  core: { platform: 'neutral' },
  peer: { platform: 'browser' },
  relay: { platform: 'node', extra: ['src/node/cli.ts'] },
  // React bindings (when the package is there): the same layout as the others.
  react: { platform: 'browser' },
};

/** @param {string} dir */
function sourceEntries(dir) {
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  /** @type {string[]} */
  const entries = [];
  for (const target of Object.values(pkg.exports ?? {})) {
    if (typeof target === 'object' && target !== null && typeof target.source === 'string')
      entries.push(target.source);
  }
  return entries;
}

/**
 * `new URL('./worker/entry.ts', import.meta.url)` (the form bundlers turn into a worker
 * chunk) names the built file in dist/: `.ts` becomes `.js`. Entry points keep their paths
 * and chunks sit at dist/'s top, like the sources that use it (src/connect.ts).
 * @type {import('esbuild').Plugin}
 */
const workerUrls = {
  name: 'worker-urls',
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      if (!text.includes('import.meta.url')) return undefined;
      return {
        contents: text.replace(
          /new URL\('(\.{1,2}\/[^']+)\.ts', import\.meta\.url\)/g,
          "new URL('$1.js', import.meta.url)",
        ),
        loader: 'ts',
      };
    });
  },
};

/**
 * tsc keeps relative specifiers as written (`./errors`); Node-style resolution
 * (`moduleResolution: node16`) needs the file: `./errors.js` or `./dir/index.js`.
 * @param {string} dir
 */
function fixDeclarationSpecifiers(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      fixDeclarationSpecifiers(path);
      continue;
    }
    if (!name.endsWith('.d.ts')) continue;
    const text = readFileSync(path, 'utf8');
    const fixed = text.replace(
      /((?:from|import)\s*\(?\s*)(['"])(\.{1,2}\/[^'"]*?)\2/g,
      (
        /** @type {string} */ all,
        /** @type {string} */ lead,
        /** @type {string} */ q,
        /** @type {string} */ spec,
      ) => {
        if (/\.(js|mjs|cjs|json)$/.test(spec)) return all;
        const base = join(dirname(path), spec);
        if (existsSync(`${base}.d.ts`)) return `${lead}${q}${spec}.js${q}`;
        if (existsSync(join(base, 'index.d.ts'))) return `${lead}${q}${spec}/index.js${q}`;
        return all;
      },
    );
    if (fixed !== text) writeFileSync(path, fixed);
  }
}

/** @param {string} name */
async function buildPackage(name) {
  const spec = PACKAGES[name];
  if (spec === undefined) throw new Error(`unknown package ${name}: ${Object.keys(PACKAGES).join(', ')}`);
  const dir = join(root, 'packages', name);
  const dist = join(dir, 'dist');
  rmSync(dist, { recursive: true, force: true });
  const started = Date.now();
  await build({
    entryPoints: [...sourceEntries(dir), ...(spec.extra ?? [])].map((e) => join(dir, e)),
    outdir: dist,
    outbase: join(dir, 'src'),
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: spec.platform,
    target: 'es2022',
    packages: 'external',
    sourcemap: true,
    logLevel: 'warning',
    plugins: [workerUrls],
  });
  const tsc = spawnSync(
    process.execPath,
    [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(dir, 'tsconfig.build.json')],
    {
      cwd: root,
      stdio: ['ignore', process.stderr, process.stderr],
    },
  );
  if (tsc.status !== 0)
    throw new Error(`tsc (declarations of ${name}) exited with ${tsc.status ?? tsc.signal}`);
  fixDeclarationSpecifiers(dist);
  // stderr: `npm pack --json` prints its JSON on stdout.
  console.error(`built ${relative(root, dist)} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

const asked = process.argv.slice(2);
const all = Object.keys(PACKAGES).filter((name) => existsSync(join(root, 'packages', name, 'package.json')));
for (const name of asked.length > 0 ? asked : all) await buildPackage(name);
