import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { newCatchUp } from './bucket-state';
import { checksumEquals, checksumOf, emptyChecksum } from './checksum';
import type { MittsyncError } from './errors';
import { checkWrite, commitWrites, type LocalWriteContext, type Write } from './local-writes';
import type { Value } from './model';
import { fakeSync, freshBucket, storedValues } from './testing/sync-fakes';
import { DEFAULT_LIMITS } from './validate';

function rig() {
  const f = fakeSync();
  const calls: string[] = [];
  const ctx: LocalWriteContext = {
    ...f,
    replicaId: 'rA',
    catchUp: {
      noteLocalWrites: (b, puts) => calls.push(`note ${b.name} ${puts.map((e) => e.key).join(',')}`),
    },
    outbox: { pump: (b) => calls.push(`pump ${b.name}`) },
  };
  return { f, ctx, calls, b: freshBucket() };
}

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (e) {
    return (e as MittsyncError).code;
  }
};

describe('checkWrite', () => {
  const limits = { ...DEFAULT_LIMITS, maxKeyBytes: 4, maxValueBytes: 16 };

  it('refuses an empty key, a key or a value over the limits, with the matching code', () => {
    expect(codeOf(() => checkWrite({ key: '', value: 1 }, limits))).toBe('BAD_MESSAGE');
    expect(codeOf(() => checkWrite({ key: 'ééé', value: 1 }, limits))).toBe('KEY_TOO_LARGE');
    expect(codeOf(() => checkWrite({ key: 'k', value: 'x'.repeat(64) }, limits))).toBe('VALUE_TOO_LARGE');
    expect(codeOf(() => checkWrite({ key: 'k', delete: true }, limits))).toBeUndefined();
  });

  it("copies the value: the caller's later mutation changes nothing written", () => {
    const value = { list: [1, { n: 2 }] } as { list: [number, { n: number }] };
    const w = checkWrite({ key: 'k', value }, DEFAULT_LIMITS) as { value: Value };
    value.list[1].n = 99;
    expect(w.value).toEqual({ list: [1, { n: 2 }] });
  });
});

describe('commitWrites', () => {
  it('gives the writes consecutive originSeqs and rising HLCs, and stores them with their outbox ops', async () => {
    const { f, ctx, b } = rig();
    b.meta = { ...b.meta, nextOriginSeq: 5 };
    const ops = await commitWrites(ctx, b, [
      { key: 'a', value: 1 },
      { key: 'b', delete: true },
    ]);
    expect(ops.map((o) => [o.originSeq, o.key, o.kind, o.origin])).toEqual([
      [5, 'a', 'set', 'rA'],
      [6, 'b', 'del', 'rA'],
    ]);
    expect((ops[0]?.hlc ?? '') < (ops[1]?.hlc ?? '')).toBe(true);
    expect(storedValues(f.storage)).toEqual({ a: 1, b: '<deleted>' });
    expect(f.storage.peekMeta('b').outbox).toEqual(ops);
    expect(f.storage.peekMeta('b').meta?.nextOriginSeq).toBe(7);
    expect(b.outbox).toEqual(ops);
  });

  it('tells catch-up and listeners about the writes, then pushes', async () => {
    const { f, ctx, calls, b } = rig();
    await commitWrites(ctx, b, [{ key: 'a', value: 1 }]);
    expect(calls).toEqual(['note b a', 'pump b']);
    expect(f.changes.map((c) => [c.source, c.entries.map((e) => e.key)])).toEqual([['local', ['a']]]);
  });

  it('lets a real fresh join keep the versions it wrote', async () => {
    const { f, b } = rig();
    const cu = newCatchUp(
      {
        type: 'subscribed',
        bucket: 'b',
        subId: 1,
        epoch: 'e',
        from: 1,
        received: 0,
        sum: emptyChecksum(),
        splits: [],
      },
      0,
    );
    b.catchUp = cu;
    const ctx: LocalWriteContext = {
      ...f,
      replicaId: 'rA',
      catchUp: {
        noteLocalWrites: (x, puts) => {
          for (const e of puts) x.catchUp?.kept.set(e.key, { hlc: e.hlc });
        },
      },
      outbox: { pump: () => undefined },
    };
    const [op] = await commitWrites(ctx, b, [{ key: 'a', value: 1 }]);
    expect(cu.kept.get('a')).toEqual({ hlc: op?.hlc });
  });

  it('keeps the stored checksum exact over any batches of sets and deletes (property)', async () => {
    const writeArb: fc.Arbitrary<Write> = fc.oneof(
      fc.record({ key: fc.constantFrom('a', 'b', 'c'), value: fc.integer() }),
      fc.record({ key: fc.constantFrom('a', 'b', 'c'), delete: fc.constant(true as const) }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(writeArb, { minLength: 1, maxLength: 5 }), { maxLength: 5 }),
        async (batches) => {
          const { f, ctx, b } = rig();
          for (const batch of batches) await commitWrites(ctx, b, batch);
          expect(checksumEquals(b.meta.sum, checksumOf(f.storage.peek('b').values()))).toBe(true);
          expect(b.outbox.map((o) => o.originSeq)).toEqual(b.outbox.map((_, i) => i + 1));
        },
      ),
      { numRuns: 100 },
    );
  });
});
