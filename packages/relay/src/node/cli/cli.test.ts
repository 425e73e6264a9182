import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signToken } from '../../auth';
import type { BucketInfo } from '../../relay';
import { RELAY_BIN, type RelayProcess, spawnRelayProcess } from '../process';

// The CLI as users run it (the package's bin, a child process) against a real Node relay on
// loopback.
const secret = 'cli-test-secret-cli-test-secret-cli-test';
const dir = mkdtempSync(join(tmpdir(), 'mittsync-cli-'));
let relay: RelayProcess;
let token: string;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RELAY_BIN, ...args], {
      cwd: dir,
      env: { ...process.env, MITTSYNC_RELAY: relay.httpUrl, MITTSYNC_TOKEN: token, ...env },
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

async function info(bucket: string): Promise<BucketInfo> {
  const res = await fetch(`${relay.httpUrl}/v1/buckets/${bucket}/info`, {
    headers: { authorization: `Bearer ${token}` },
  });
  expect(res.status).toBe(200);
  return (await res.json()) as BucketInfo;
}

const file = (name: string) => join(dir, name);
const lines = (path: string) =>
  readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '');

/** Records with every kind of JSON value, keys in no particular order, some needing escapes. */
function sampleRecords(n: number): { key: string; value: unknown }[] {
  const out: { key: string; value: unknown }[] = [];
  for (let i = 0; i < n; i++) {
    const kind = i % 6;
    const value =
      kind === 0
        ? { title: `item ${i}`, done: i % 4 === 0, tags: ['a', `t${i % 7}`], n: i * 1.5 }
        : kind === 1
          ? `line\nbreak "quoted" ${i} é ✓`
          : kind === 2
            ? i
            : kind === 3
              ? null
              : kind === 4
                ? [i, { nested: { deep: [true, false] } }]
                : false;
    out.push({ key: `${(i * 7919) % n}/k-${i} ü`, value });
  }
  return out;
}

beforeAll(async () => {
  relay = await spawnRelayProcess({ secret, data: join(dir, 'relay') });
  token = await signToken(secret, { sub: 'cliTester', read: ['*'], write: ['*'] });
});

afterAll(async () => {
  await relay?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('mittsync export / import', () => {
  it('round-trips a bucket: import, export, import elsewhere, export again, values identical', async () => {
    const records = sampleRecords(3000);
    writeFileSync(file('src.ndjson'), records.map((r) => JSON.stringify(r)).join('\n'));
    const imported = await cli(['import', 'rt-a', file('src.ndjson'), '--batch', '700']);
    expect(imported.stderr).toContain('3,000 entries');
    expect(imported.code).toBe(0);

    const exported = await cli(['export', 'rt-a', '--out', file('a.ndjson')]);
    expect(exported.code).toBe(0);
    const a = lines(file('a.ndjson')).map((l) => JSON.parse(l) as { key: string; value: unknown });
    expect(a).toHaveLength(3000);
    // Key order, and exactly the values written.
    const keys = a.map((r) => r.key);
    expect(keys).toEqual([...keys].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)));
    const byKey = new Map(records.map((r) => [r.key, r.value]));
    for (const r of a) expect(r.value).toEqual(byKey.get(r.key));

    expect((await cli(['import', 'rt-b', file('a.ndjson')])).code).toBe(0);
    const toStdout = await cli(['export', 'rt-b']);
    expect(toStdout.code).toBe(0);
    expect(toStdout.stdout).toBe(readFileSync(file('a.ndjson'), 'utf8'));
  });

  it('imports deletes and exports only live entries', async () => {
    writeFileSync(
      file('del.ndjson'),
      ['{"key":"x","value":1}', '{"key":"y","value":2}', '', '{"key":"x","deleted":true}'].join('\n'),
    );
    expect((await cli(['import', 'del', file('del.ndjson')])).code).toBe(0);
    const out = await cli(['export', 'del']);
    expect(out.stdout).toBe('{"key":"y","value":2}\n');
    expect((await info('del')).entries).toBe(1);
  });

  it('resumes an export stopped after N entries, cutting a half-written last line', async () => {
    const partial = await cli([
      'export',
      'rt-a',
      '--out',
      file('part.ndjson'),
      '--max',
      '1234',
      '--page-size',
      '500',
    ]);
    expect(partial.code).toBe(0);
    expect(partial.stderr).toContain('--resume continues');
    expect(lines(file('part.ndjson'))).toHaveLength(1234);
    // As if killed in the middle of a line.
    writeFileSync(file('part.ndjson'), '{"key":"zz-half', { flag: 'a' });
    const rest = await cli([
      'export',
      'rt-a',
      '--out',
      file('part.ndjson'),
      '--resume',
      '--page-size',
      '500',
    ]);
    expect(rest.code).toBe(0);
    expect(rest.stderr).toContain('1,766 entries');
    expect(readFileSync(file('part.ndjson'), 'utf8')).toBe(readFileSync(file('a.ndjson'), 'utf8'));
  });

  it('resumes an import stopped after N records, and a re-run applies nothing twice', async () => {
    const records = sampleRecords(2500);
    writeFileSync(file('stop.ndjson'), records.map((r) => JSON.stringify(r)).join('\n'));
    const first = await cli(['import', 'stop', file('stop.ndjson'), '--max', '1000', '--batch', '300']);
    expect(first.code).toBe(0);
    const checkpoint = JSON.parse(readFileSync(file('stop.ndjson.stop.mittsync-import.json'), 'utf8'));
    expect(checkpoint).toMatchObject({ acked: 1000, done: false, origin: 'cliTester' });
    expect((await info('stop')).entries).toBe(1000);

    const second = await cli(['import', 'stop', file('stop.ndjson'), '--batch', '300']);
    expect(second.code).toBe(0);
    expect(second.stderr).toContain('after 1000 records of an earlier run');
    const after = await info('stop');
    expect(after.entries).toBe(2500);
    // Each record was applied once: one seq per record.
    expect(after.head).toBe(2500);

    const third = await cli(['import', 'stop', file('stop.ndjson')]);
    expect(third.code).toBe(0);
    expect(third.stderr).toContain('already imported');
    expect((await info('stop')).head).toBe(2500);
  });

  it('resumes an import killed mid-way without applying any record twice', async () => {
    const n = 20_000;
    const records = sampleRecords(n);
    writeFileSync(file('kill.ndjson'), records.map((r) => JSON.stringify(r)).join('\n'));
    const cp = file('kill.ndjson.kill.mittsync-import.json');
    const child: ChildProcess = spawn(
      process.execPath,
      [RELAY_BIN, 'import', 'kill', file('kill.ndjson'), '--batch', '50', '--quiet'],
      {
        cwd: dir,
        env: { ...process.env, MITTSYNC_RELAY: relay.httpUrl, MITTSYNC_TOKEN: token },
        stdio: 'ignore',
      },
    );
    const exited = new Promise((r) => child.once('exit', r));
    // Killed as soon as its checkpoint shows a first acked batch.
    for (;;) {
      if (existsSync(cp) && JSON.parse(readFileSync(cp, 'utf8')).acked > 0) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    child.kill('SIGKILL');
    await exited;
    const killedAt = JSON.parse(readFileSync(cp, 'utf8')) as { acked: number; done: boolean };
    expect(killedAt.done).toBe(false);
    expect(killedAt.acked).toBeLessThan(n);

    const resumed = await cli(['import', 'kill', file('kill.ndjson')]);
    expect(resumed.code).toBe(0);
    const after = await info('kill');
    expect(after.entries).toBe(n);
    expect(after.head).toBe(n);
    const out = await cli(['export', 'kill']);
    const byKey = new Map(records.map((r) => [r.key, r.value]));
    const exported = out.stdout.split('\n').filter((l) => l !== '');
    expect(exported).toHaveLength(n);
    for (const l of exported) {
      const r = JSON.parse(l) as { key: string; value: unknown };
      expect(r.value).toEqual(byKey.get(r.key));
    }
  });

  it('imports CSV: a header row, quoted fields, a key column, cast values', async () => {
    writeFileSync(
      file('items.csv'),
      [
        '\ufeffsku,name,qty,active',
        'a1,"Bolt, steel",12,true',
        'a2,"two\nlines ""q""",0.5,false',
        'a3,plain,x7,',
      ].join('\r\n'),
    );
    const run = await cli(['import', 'csv', file('items.csv'), '--key', 'sku', '--cast']);
    expect(run.code).toBe(0);
    const out = (await cli(['export', 'csv'])).stdout.split('\n').filter((l) => l !== '');
    expect(out.map((l) => JSON.parse(l))).toEqual([
      { key: 'a1', value: { name: 'Bolt, steel', qty: 12, active: true } },
      { key: 'a2', value: { name: 'two\nlines "q"', qty: 0.5, active: false } },
      { key: 'a3', value: { name: 'plain', qty: 'x7', active: '' } },
    ]);
    // Without --cast every cell stays a string; the first column is the key by default.
    writeFileSync(file('plain.csv'), 'id,qty\nr1,3\n');
    expect((await cli(['import', 'csv2', file('plain.csv')])).code).toBe(0);
    expect((await cli(['export', 'csv2'])).stdout).toBe('{"key":"r1","value":{"qty":"3"}}\n');
  });

  it('names the record of a file it cannot import', async () => {
    writeFileSync(file('bad.ndjson'), '{"key":"ok","value":1}\n{"value":2}\n');
    const run = await cli(['import', 'bad', file('bad.ndjson')]);
    expect(run.code).toBe(1);
    expect(run.stderr.trim()).toMatch(/^mittsync import: .*bad\.ndjson:2: "key" must be a non-empty string$/);
  });
});

describe('mittsync inspect', () => {
  it("prints the bucket's size, checkpoint and the relay's health", async () => {
    const run = await cli(['inspect', 'rt-a']);
    expect(run.code).toBe(0);
    const i = await info('rt-a');
    expect(run.stdout).toMatch(/entries\s+3,000 live/);
    expect(run.stdout).toContain(`head seq     ${i.head}`);
    expect(run.stdout).toContain(i.epoch);
    expect(run.stdout).toMatch(/relay\s+http:\/\/127\.0\.0\.1:\d+ \(healthy/);
    expect(run.stdout).toMatch(/replicas\s+\(not reported by this relay\)/);
    const json = await cli(['inspect', 'rt-a', '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({
      info: { bucket: 'rt-a', entries: 3000 },
      health: { ok: true },
    });
  });
});

describe('errors: one line, non-zero exit', () => {
  const commands = (bucket: string): string[][] => [
    ['export', bucket],
    ['inspect', bucket],
  ];

  it('a bad token', async () => {
    const forged = await signToken('another-secret-another-secret-another', { sub: 'x', read: ['*'] });
    for (const args of [...commands('rt-a'), ['import', 'rt-a', file('del.ndjson')]]) {
      const run = await cli(args, { MITTSYNC_TOKEN: forged });
      expect(run.code, args.join(' ')).toBe(1);
      expect(run.stderr.trim().split('\n')).toHaveLength(1);
      expect(run.stderr).toMatch(/^mittsync \w+: the relay refused the token/);
    }
    const noToken = await cli(['inspect', 'rt-a'], { MITTSYNC_TOKEN: '' });
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toContain('no token: pass --token');
  });

  it('a token without the scope', async () => {
    const readOnly = await signToken(secret, { sub: 'reader', read: ['other'] });
    const run = await cli(['export', 'rt-a'], { MITTSYNC_TOKEN: readOnly });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('FORBIDDEN');
  });

  it('a missing bucket', async () => {
    for (const args of commands('never-written')) {
      const run = await cli(args);
      expect(run.code, args.join(' ')).toBe(1);
      expect(run.stderr.trim()).toBe(
        `mittsync ${args[0]}: bucket never-written not found on ${relay.httpUrl} (nothing was ever written to it)`,
      );
    }
  });

  it('an unreachable relay', async () => {
    // A port nothing listens on: the relay's, after a relay that stopped.
    const gone = await spawnRelayProcess({ secret });
    const url = gone.httpUrl;
    await gone.stop();
    for (const args of [...commands('rt-a'), ['import', 'rt-a', file('del.ndjson')]]) {
      const run = await cli(args, { MITTSYNC_RELAY: url });
      expect(run.code, args.join(' ')).toBe(1);
      expect(run.stderr.trim()).toBe(`mittsync ${args[0]}: cannot reach the relay at ${url} (ECONNREFUSED)`);
    }
  });

  it('usage errors exit 2; every command has --help', async () => {
    const bad = await cli(['export', 'not a bucket!']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('not a bucket name');
    expect((await cli(['import', 'x'])).code).toBe(2);
    expect((await cli(['frobnicate'])).code).toBe(2);
    for (const command of ['relay', 'edge', 'export', 'import', 'inspect']) {
      const help = await cli([command, '--help']);
      expect(help.code, command).toBe(0);
      expect(help.stdout).toContain(`Usage: mittsync ${command}`);
    }
  });
});
