import { describe, expect, it } from 'vitest';
import { defaultControl, patchControl, replicationAllowed } from './replication-control';

describe('replication control', () => {
  it('allows everyone by default', () => {
    const c = defaultControl();
    expect(replicationAllowed(c, 'in', { subject: 'a' })).toBe(true);
    expect(replicationAllowed(c, 'out', { subject: 'a', groups: ['x'] })).toBe(true);
  });

  it('refuses everyone when off, the denied always, and all but the allowed when there is an allow list', () => {
    const off = patchControl(defaultControl(), { in: { enabled: false, allow: ['sub:a'] } });
    expect(replicationAllowed(off, 'in', { subject: 'a' })).toBe(false);
    expect(replicationAllowed(off, 'out', { subject: 'a' })).toBe(true);
    const lists = patchControl(defaultControl(), {
      out: { allow: ['group:staff', 'sub:bob'], deny: ['sub:eve'] },
    });
    expect(replicationAllowed(lists, 'out', { subject: 'al', groups: ['staff'] })).toBe(true);
    expect(replicationAllowed(lists, 'out', { subject: 'bob' })).toBe(true);
    expect(replicationAllowed(lists, 'out', { subject: 'carol', groups: ['guests'] })).toBe(false);
    expect(replicationAllowed(lists, 'out', { subject: 'eve', groups: ['staff'] })).toBe(false);
  });

  it('patches field by field and refuses malformed patches with BAD_MESSAGE', () => {
    const a = patchControl(defaultControl(), { in: { deny: ['sub:x'] } });
    const b = patchControl(a, { in: { enabled: false } });
    expect(b.in).toEqual({ enabled: false, allow: [], deny: ['sub:x'] });
    for (const bad of [
      null,
      [],
      { up: {} },
      { in: { enabled: 'no' } },
      { out: { deny: ['x'] } },
      { out: 3 },
    ]) {
      expect(() => patchControl(defaultControl(), bad)).toThrow(
        expect.objectContaining({ code: 'BAD_MESSAGE' }),
      );
    }
  });
});
