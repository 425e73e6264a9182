import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LiveQueryState } from '../live-query';
import { del, set } from '../testing/entries';
import type { ClientStatus, HostEvent } from './api';
import { decodeEvents, encodeEvents } from './event-frame';
import { LiveMirror } from './watchers';

describe('event batches (worker to page)', () => {
  it('reads a batch from bytes at any offset, and rejects one that does not add up', () => {
    const m = new LiveMirror();
    const s = new LiveQueryState<unknown>();
    const bytes = encodeEvents([
      { t: 'snap', w: 7, b: m.snapshot([set('a', 'h1', 'one'), set('b', 'h1', [2])]) },
    ]);
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    const [ev] = decodeEvents(shifted.subarray(1));
    if (ev?.t !== 'snap') throw new Error('expected a snapshot');
    expect(ev.w).toBe(7);
    expect(s.snapshot(ev.b).rows()).toEqual([
      { key: 'a', value: 'one' },
      { key: 'b', value: [2] },
    ]);
    for (const cut of [0, 4, 12, bytes.length - 4])
      expect(() => decodeEvents(bytes.subarray(0, cut))).toThrow(
        expect.objectContaining({ code: 'BAD_FRAME' }),
      );
    const unknown = bytes.slice();
    new Uint32Array(unknown.buffer)[1] = 9;
    expect(() => decodeEvents(unknown)).toThrow(expect.objectContaining({ code: 'BAD_FRAME' }));
  });

  it('round-trips batches of status and entry events, any keys and values', () => {
    const status = {
      connection: 'online',
      buckets: [],
      pending: 3,
      persistent: true,
    } as unknown as ClientStatus;
    const entry = fc.record({
      key: fc.string({ unit: 'binary', minLength: 1, maxLength: 12 }),
      value: fc.oneof(fc.string(), fc.integer(), fc.constant(null), fc.array(fc.boolean())),
      deleted: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.array(fc.array(entry, { maxLength: 20 }), { maxLength: 4 }),
        fc.boolean(),
        (batches, withStatus) => {
          const m = new LiveMirror();
          let hlc = 0;
          const toEntries = (es: (typeof batches)[number]) => {
            hlc++;
            const h = String(hlc).padStart(6, '0');
            return es.map((e) => (e.deleted ? del(e.key, h) : set(e.key, h, e.value)));
          };
          const events: HostEvent[] = [];
          if (withStatus) events.push({ t: 'status', s: status });
          events.push({
            t: 'snap',
            w: 0,
            b: m.snapshot(toEntries(batches[0] ?? []).filter((e) => !e.deleted)),
          });
          for (const [n, b] of batches.slice(1).entries()) {
            const cols = m.change(toEntries(b));
            if (cols !== null)
              events.push({ t: 'chg', w: n + 1, b: cols, s: n % 2 === 0 ? 'local' : 'remote' });
          }
          const plain = (evs: HostEvent[]) =>
            evs.map((ev) =>
              ev.t === 'status'
                ? ev
                : {
                    ...ev,
                    b: {
                      ...ev.b,
                      i: [...ev.b.i],
                      kl: [...ev.b.kl],
                      x: [...ev.b.x],
                      v: [...ev.b.v],
                      o: [...ev.b.o],
                    },
                  },
            );
          expect(plain(decodeEvents(encodeEvents(events)))).toEqual(plain(events));
        },
      ),
    );
  });
});
