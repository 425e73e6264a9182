#!/usr/bin/env node
// The `mittsync` CLI. From an installed package it runs the build in dist/. In the monorepo
// (where src/ is next to this file) it runs the TypeScript sources: tsx's loader and the
// "source" export condition (so @mittsync/* resolve to their sources too) are registered in
// this process, so signals reach the relay directly.
import { existsSync } from 'node:fs';
import { register } from 'node:module';

const source = new URL('../src/node/cli.ts', import.meta.url);
if (existsSync(source)) {
  register('./source-condition.mjs', import.meta.url);
  const { register: registerTsx } = await import('tsx/esm/api');
  registerTsx();
  await import(source.href);
} else {
  await import('../dist/node/cli.js');
}
