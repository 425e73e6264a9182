import { describe, expect, it } from 'vitest';
import { encodeHlc } from './hlc';
import { DEFAULT_LIMITS, measureValue, validateClientMessage, validateServerMessage } from './validate';

const hlc = encodeHlc(1000, 0, 'rA');
const push = (ops: unknown[]) => ({ type: 'push', bucket: 'b', ops });
const op = (patch: Record<string, unknown> = {}) => ({
  origin: 'rA',
  originSeq: 1,
  key: 'k',
  kind: 'set',
  value: 1,
  hlc,
  ...patch,
});

describe('inbound validation', () => {
  it('accepts well-formed client messages and returns clean copies', () => {
    expect(validateClientMessage({ type: 'hello', v: 1, replicaId: 'rA', extra: 'dropped' })).toEqual({
      type: 'hello',
      v: 1,
      replicaId: 'rA',
    });
    expect(validateClientMessage(push([op()]))).toEqual(push([op()]));
  });

  it('takes a sub’s policy when it is one of the policies, and refuses any other', () => {
    const sub = { type: 'sub', bucket: 'b', since: 0, flush: true, subId: 1 };
    for (const policy of ['replica', 'readOnly', 'copy']) {
      expect(validateClientMessage({ ...sub, policy })).toEqual({ ...sub, policy });
    }
    expect(validateClientMessage(sub)).toEqual(sub);
    for (const policy of ['readonly', 1, null]) {
      expect(() => validateClientMessage({ ...sub, policy })).toThrow(/sub\.policy/);
    }
  });

  it('validates auth frames, and drops a token from hello (tokens travel on the upgrade)', () => {
    expect(validateClientMessage({ type: 'auth', token: 'h.p.s', extra: 1 })).toEqual({
      type: 'auth',
      token: 'h.p.s',
    });
    for (const token of [undefined, '', 42, 'x'.repeat(8193)]) {
      expect(() => validateClientMessage({ type: 'auth', token })).toThrow(/auth\.token/);
    }
    expect(validateClientMessage({ type: 'hello', v: 1, replicaId: 'rA', token: 'h.p.s' })).toEqual({
      type: 'hello',
      v: 1,
      replicaId: 'rA',
    });
    expect(validateServerMessage({ type: 'authed', expiresAt: 1_000 })).toEqual({
      type: 'authed',
      expiresAt: 1_000,
    });
    expect(() => validateServerMessage({ type: 'authed' })).toThrow(/authed/);
  });

  it('rejects malformed messages with typed codes', () => {
    const cases: [unknown, string][] = [
      [null, 'BAD_MESSAGE'],
      [[], 'BAD_MESSAGE'],
      [{ type: 'nope' }, 'BAD_MESSAGE'],
      [{ type: 'sub', bucket: 'b', since: -1, flush: true, subId: 1 }, 'BAD_MESSAGE'],
      [{ type: 'sub', bucket: '../etc', since: 0, flush: true, subId: 1 }, 'BAD_MESSAGE'],
      [push([]), 'BAD_MESSAGE'],
      [push([op({ kind: 'upsert' })]), 'BAD_MESSAGE'],
      [push([op({ originSeq: 0 })]), 'BAD_MESSAGE'],
      [push([op({ hlc: 'yesterday' })]), 'BAD_HLC'],
      [push([op({ key: 'k'.repeat(DEFAULT_LIMITS.maxKeyBytes + 1) })]), 'KEY_TOO_LARGE'],
      [push([op({ key: 'a\uD800b' })]), 'BAD_MESSAGE'],
      [push([op({ key: '\uDC00' })]), 'BAD_MESSAGE'],
      [push([op({ value: 'v'.repeat(DEFAULT_LIMITS.maxValueBytes) })]), 'VALUE_TOO_LARGE'],
      [push(Array.from({ length: DEFAULT_LIMITS.maxOpsPerFrame + 1 }, () => op())), 'TOO_MANY_OPS'],
      [push([op({ value: Number.NaN })]), 'BAD_MESSAGE'],
      [{ type: 'pageReq', bucket: 'b', reqId: 1, since: 0, limit: 0 }, 'BAD_MESSAGE'],
    ];
    for (const [msg, code] of cases) {
      expect(() => validateClientMessage(msg), JSON.stringify(msg)?.slice(0, 80)).toThrowError(
        expect.objectContaining({ code }),
      );
    }
  });

  it('measures values and refuses ones nested too deep or not JSON', () => {
    expect(measureValue({ a: [1, 'xy'] })).toBeGreaterThan(10);
    let deep: unknown = 1;
    for (let i = 0; i < 40; i++) deep = [deep];
    expect(() => measureValue(deep)).toThrow(/deeper/);
    expect(() => measureValue(new Date())).toThrow(/non-plain/);
    expect(() => measureValue(JSON.parse('{"a":{"__proto__":{"x":1}}}'))).toThrow(/__proto__/);
  });

  it('rejects malformed relay frames', () => {
    expect(() =>
      validateServerMessage({
        type: 'deliver',
        bucket: 'b',
        ops: [{ seq: 'x' }],
        sum: { count: 0, a: 0, b: 0 },
      }),
    ).toThrow();
    const op = { origin: 'rA', originSeq: 1, key: 'k', kind: 'del', hlc: encodeHlc(1, 0, 'rA'), seq: 1 };
    const deliver = (prev: unknown) => ({
      type: 'deliver',
      bucket: 'b',
      ops: [{ ...op, prev }],
      sum: { count: 0, a: 0, b: 0 },
    });
    expect(() => validateServerMessage(deliver({ hlc: 'nope' }))).toThrow(/op.prev/);
    expect(() => validateServerMessage(deliver({ hlc: op.hlc, deleted: 1 }))).toThrow(/op.prev/);
    expect(() => validateServerMessage(deliver('x'))).toThrow(/op.prev/);
    expect(validateServerMessage(deliver(null))).toMatchObject({ ops: [{ prev: null }] });
    const page = { type: 'page', bucket: 'b', reqId: 1, entries: [], next: null };
    expect(() => validateServerMessage({ ...page, head: -1 })).toThrow(/page.head/);
    expect(validateServerMessage({ ...page, head: 7 })).toMatchObject({ head: 7 });
    expect(() => validateServerMessage({ type: 'error', code: 'MADE_UP', message: 'x' })).toThrow();
    expect(validateServerMessage({ type: 'error', code: 'FORBIDDEN', message: 'no' })).toMatchObject({
      code: 'FORBIDDEN',
    });
  });
});
