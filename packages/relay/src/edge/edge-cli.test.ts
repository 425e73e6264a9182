import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { signToken } from '../auth';
import { type EdgeRelay, startEdgeRelay } from '../node/edge-local';
import { RELAY_BIN } from '../node/process';

// The CLI's data commands against the edge relay on workerd: the routes they use (info, pages,
// pushes) are the shared app's, forwarded by the Worker to the bucket's Durable Object.
const secret = 'edge-cli-secret-edge-cli-secret-edge-cli';
const dir = mkdtempSync(join(tmpdir(), 'mittsync-edge-cli-'));
let edge: EdgeRelay;
let token: string;

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RELAY_BIN, ...args, '--relay', edge.httpUrl, '--token', token], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

beforeAll(async () => {
  edge = await startEdgeRelay({ persist: join(dir, 'state'), secret });
  token = await signToken(secret, { sub: 'edgeCli', read: ['*'], write: ['*'] });
});

afterAll(async () => {
  await edge?.close();
  rmSync(dir, { recursive: true, force: true });
});

it('imports, exports and inspects a bucket on the edge relay; a missing one is NOT_FOUND', async () => {
  const records = Array.from({ length: 1500 }, (_, i) => ({
    key: `k${String(i).padStart(4, '0')}`,
    value: { i },
  }));
  const file = join(dir, 'in.ndjson');
  writeFileSync(file, records.map((r) => `${JSON.stringify(r)}\n`).join(''));
  const imported = await cli(['import', 'edge-cli', file, '--batch', '400']);
  expect(imported.stderr).toContain('1,500 entries');
  expect(imported.code).toBe(0);

  const exported = await cli(['export', 'edge-cli', '--page-size', '500']);
  expect(exported.code).toBe(0);
  expect(exported.stdout).toBe(readFileSync(file, 'utf8'));

  const inspected = await cli(['inspect', 'edge-cli', '--json']);
  expect(inspected.code).toBe(0);
  expect(JSON.parse(inspected.stdout)).toMatchObject({
    info: { bucket: 'edge-cli', exists: true, head: 1500, entries: 1500, received: 1500 },
    health: { ok: true },
  });

  const missing = await cli(['inspect', 'edge-nothing']);
  expect(missing.code).toBe(1);
  expect(missing.stderr).toContain('bucket edge-nothing not found');
});
