import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wrapVersion } from '../schema';
import { type RelaySetup, type RelayUnderTest, rawClient, uniq } from './relay-harness';

/**
 * Relay-side validation: a relay configured with `CONFORMANCE_SCHEMAS` refuses pushed
 * values its schema refuses, per op (`INVALID_VALUE` naming the path), commits the rest of
 * the frame, and stays up for everyone.
 */
export function runRelaySchemaTests(setup: RelaySetup): void {
  describe('relay schemas', () => {
    const ctx = {} as { relay: RelayUnderTest };
    beforeAll(async () => {
      ctx.relay = await setup();
    });
    afterAll(async () => {
      await ctx.relay?.close();
    });

    it('refuses invalid values per op and commits the valid ones of the same push', async () => {
      const bucket = uniq('typed');
      const w = await rawClient(ctx.relay);
      w.send({ type: 'sub', bucket, since: 0, flush: false, subId: 1 });
      await w.next('subscribed');
      w.send({
        type: 'push',
        bucket,
        ops: [
          w.op('ok2', wrapVersion(2, { title: 'a', done: true, tags: [{ w: 1 }] })),
          w.op('bad', wrapVersion(2, { title: 'b', done: true, tags: [{ w: 1 }, { w: 'x' }] })),
          w.op('ok1', { title: 'old client' }),
          w.op('newer', wrapVersion(3, { title: 'c' })),
          w.op('gone', null, 'del'),
        ],
      });
      const ack = await w.next('ack');
      expect(ack.upTo).toBe(5);
      expect(ack.rejected?.map((r) => [r.originSeq, r.code])).toEqual([
        [2, 'INVALID_VALUE'],
        [4, 'INVALID_VALUE'],
      ]);
      expect(ack.rejected?.[0]?.message).toContain('tags[1].w');
      const d = await w.next('deliver');
      expect(d.ops.map((o) => o.key)).toEqual(['ok2', 'ok1', 'gone']);
      // The relay stays up: the same socket goes on writing.
      w.send({
        type: 'push',
        bucket,
        ops: [w.op('later', wrapVersion(2, { title: 'd', done: false, tags: [] }))],
      });
      const next = await w.next('ack');
      expect(next.upTo).toBe(6);
      expect(next.rejected).toBeUndefined();
      w.close();
    });

    it('leaves buckets without a schema unchecked', async () => {
      const bucket = uniq('plain');
      const w = await rawClient(ctx.relay);
      w.send({ type: 'push', bucket, ops: [w.op('k', { anything: [1, 'two'] })] });
      const ack = await w.next('ack');
      expect(ack.upTo).toBe(1);
      expect(ack.rejected).toBeUndefined();
      w.close();
    });
  });
}
