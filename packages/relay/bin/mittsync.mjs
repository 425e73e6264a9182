#!/usr/bin/env node
// Runs the relay CLI from its TypeScript source (there is no build step): tsx's loader is
// registered in this process, so signals reach the relay directly.
import { register } from 'tsx/esm/api';

register();
await import('../src/node/cli.ts');
