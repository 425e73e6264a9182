import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { signToken } from '../auth';
import { CONFORMANCE_SCHEMAS, createNodeSocket, runRelaySchemaTests } from '../testing';
import { loadSchemaModule } from './schema-module';
import { startNodeRelay } from './server';

const secret = 'schema-test-secret-schema-test-secret';

runRelaySchemaTests(async () => {
  const relay = await startNodeRelay({
    port: 0,
    data: ':memory:',
    auth: { secret },
    schemas: CONFORMANCE_SCHEMAS,
  });
  return {
    url: relay.url,
    httpUrl: relay.httpUrl,
    createSocket: createNodeSocket,
    makeToken: ({ sub, read, write }) =>
      signToken(secret, {
        sub,
        ...(read === undefined ? {} : { read }),
        ...(write === undefined ? {} : { write }),
      }),
    close: () => relay.close(),
  };
});

describe('mittsync relay --schema <module>', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mittsync-schema-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, text: string) => {
    const file = join(dir, name);
    writeFileSync(file, text);
    return file;
  };
  // A module as an application would write it, with a hand-written Standard Schema validator.
  const validator = `{ '~standard': { version: 1, vendor: 'test', validate: (v) =>
    typeof v === 'object' && v !== null && typeof v.title === 'string'
      ? { value: v } : { issues: [{ message: 'title must be a string', path: ['title'] }] } } }`;

  it('loads a default export of schemas by bucket pattern', async () => {
    const schemas = await loadSchemaModule(write('ok.mjs', `export default { 'todo:*': ${validator} };`));
    expect(Object.keys(schemas)).toEqual(['todo:*']);
  });

  it('loads a `schemas` export or a function', async () => {
    const named = await loadSchemaModule(write('named.mjs', `export const schemas = { t: ${validator} };`));
    expect(Object.keys(named)).toEqual(['t']);
    const fn = await loadSchemaModule(
      write('fn.mjs', `export default (b) => b === 't' ? ${validator} : undefined;`),
    );
    expect(typeof fn).toBe('function');
  });

  it('fails at startup on a module that exports no schemas or a bad entry', async () => {
    await expect(loadSchemaModule(write('none.mjs', 'export const x = 1;'))).rejects.toMatchObject({
      code: 'BAD_MESSAGE',
    });
    await expect(loadSchemaModule(write('bad.mjs', 'export default { t: { nope: true } };'))).rejects.toThrow(
      /schema for "t"/,
    );
    await expect(loadSchemaModule(join(dir, 'missing.mjs'))).rejects.toThrow(/cannot load schema module/);
  });
});
