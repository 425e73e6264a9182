import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeHlc } from './hlc';
import { downloadedWins, Mitt } from './mitt';
import type { SeqOp } from './model';
import { type Entry, mergeEntry, opToEntry } from './model';

const op = (seq: number, key = `k${seq}`, wall = seq): SeqOp => ({
  origin: 'rA',
  originSeq: seq,
  key,
  kind: 'set',
  value: seq,
  hlc: encodeHlc(wall, 0, 'rA'),
  seq,
});

describe('Mitt', () => {
  it('counts seqs a spec left out as received, in any frame order, without a gap', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 12 }),
        fc.integer(),
        (sizes, seed) => {
          // Frames of consecutive seqs; each keeps its first op and covers the rest by span.
          const frames: { ops: SeqOp[]; span: [number, number] }[] = [];
          let next = 1;
          for (const n of sizes) {
            frames.push({ ops: seed % 2 === 0 ? [op(next)] : [], span: [next, next + n - 1] });
            next += n;
          }
          const order = [...frames].sort(
            (a, b) => ((a.span[0] * 7919 + seed) % 13) - ((b.span[0] * 7919 + seed) % 13),
          );
          const m = new Mitt(1);
          for (const f of order) {
            for (const o of f.ops) m.add(o, true);
            m.cover(f.span[0], f.span[1]);
          }
          expect(m.upTo).toBe(next - 1);
          expect(m.hasGap).toBe(false);
          expect(m.heldCount).toBe(seed % 2 === 0 ? frames.length : 0);
          // A frame seen again brings nothing new.
          const again = frames[0] as (typeof frames)[number];
          expect(m.cover(again.span[0], again.span[1])).toBe(false);
        },
      ),
    );
  });

  it('keeps a gap open until the frame that covers it arrives', () => {
    const m = new Mitt(1);
    expect(m.cover(3, 4)).toBe(true);
    expect(m.upTo).toBe(0);
    expect(m.hasGap).toBe(true);
    m.cover(1, 2);
    expect(m.upTo).toBe(4);
    expect(m.hasGap).toBe(false);
  });

  it('scenario 7: a duplicated op is taken once', () => {
    const m = new Mitt(1);
    expect(m.add(op(1), true)).toBe(true);
    expect(m.add(op(1), true)).toBe(false);
    expect(m.heldCount).toBe(1);
    expect(m.received).toBe(1);
  });

  it('drops ops from before the subscription point (covered by the download)', () => {
    const m = new Mitt(10);
    expect(m.add(op(9), true)).toBe(false);
    expect(m.upTo).toBe(9);
  });

  it('scenario 6: detects a dropped op as a gap and never skips it', () => {
    const m = new Mitt(1);
    m.add(op(1), true);
    m.add(op(3), true);
    expect(m.hasGap).toBe(true);
    expect(m.upTo).toBe(1);
    m.add(op(2), true);
    expect(m.hasGap).toBe(false);
    expect(m.upTo).toBe(3);
  });

  it('tracks the contiguous point whatever the arrival order (property)', () => {
    fc.assert(
      fc.property(
        fc.shuffledSubarray(
          [...Array(40).keys()].map((i) => i + 1),
          { minLength: 0, maxLength: 40 },
        ),
        (seqs) => {
          const m = new Mitt(1);
          for (const s of seqs) m.add(op(s), true);
          const got = new Set(seqs);
          let expected = 0;
          while (got.has(expected + 1)) expected++;
          expect(m.upTo).toBe(expected);
        },
      ),
    );
  });

  it('scenario 20: reports when it is over its bound, and spilling empties it', () => {
    const m = new Mitt(1, { maxOps: 3, maxBytes: 1 << 20, maxAhead: 100, maxKept: 100 });
    for (let i = 1; i <= 4; i++) m.add(op(i), true);
    expect(m.isOverBound()).toBe(true);
    const spilled = m.spill();
    expect(spilled.map((o) => o.seq)).toEqual([1, 2, 3, 4]);
    expect(m.heldCount).toBe(0);
    expect(m.bytes).toBe(0);
    expect(m.upTo).toBe(4);
    expect(m.add(op(3), true)).toBe(false); // still knows what it received
  });

  it('bounds by bytes as well as by count', () => {
    const m = new Mitt(1, { maxOps: 1000, maxBytes: 500, maxAhead: 100, maxKept: 100 });
    m.add({ ...op(1), value: 'x'.repeat(600) }, true);
    expect(m.isOverBound()).toBe(true);
  });

  it('treats a gap that outgrows its bound as a lost stream', () => {
    const m = new Mitt(1, { maxOps: 1000, maxBytes: 1 << 20, maxAhead: 3, maxKept: 100 });
    for (let i = 3; i <= 7; i++) m.add(op(i), true);
    expect(m.gapOverflow).toBe(true);
  });

  it('scenario 16: remembers the newest held version per key, so older downloads lose', () => {
    const m = new Mitt(1);
    m.add(op(1, 'k', 50), true);
    m.add(op(2, 'k', 40), true);
    expect(m.newest('k')).toBe(encodeHlc(50, 0, 'rA'));
    expect(m.newest('other')).toBeUndefined();
  });
});

describe('download merge', () => {
  const arbVersion = fc.record({
    key: fc.constantFrom('a', 'b', 'c', 'd'),
    wall: fc.integer({ min: 1, max: 50 }),
    node: fc.constantFrom('rA', 'rB'),
  });

  it('never lets a downloaded entry overwrite a newer mitt entry, and ends in the LWW state (property)', () => {
    fc.assert(
      fc.property(
        fc.array(arbVersion, { maxLength: 20 }),
        fc.array(arbVersion, { maxLength: 20 }),
        (downloads, lives) => {
          const mitt = new Mitt(1);
          const liveOps = lives.map((v, i) => ({
            ...op(i + 1, v.key, v.wall),
            hlc: encodeHlc(v.wall, 1, v.node),
          }));
          for (const o of liveOps) mitt.add(o, true);
          // Downloads: one entry per key (a page never repeats a key), as the relay had it.
          const byKey = new Map<string, Entry>();
          for (const v of downloads)
            byKey.set(v.key, { key: v.key, hlc: encodeHlc(v.wall, 0, v.node), seq: 0, value: v.wall });
          const stored = new Map<string, Entry>();
          for (const e of byKey.values()) {
            const held = mitt.newest(e.key);
            if (downloadedWins(e.hlc, held, stored.get(e.key))) {
              expect(held === undefined || e.hlc > held).toBe(true);
              stored.set(e.key, e);
            }
          }
          // Then the mitt is applied (LWW), as at the end of a catch-up.
          for (const o of mitt.spill()) {
            const e = opToEntry(o, o.seq);
            const cur = stored.get(e.key);
            if (cur === undefined || e.hlc > cur.hlc) stored.set(e.key, e);
          }
          const want = new Map<string, Entry | undefined>();
          for (const e of [...byKey.values(), ...liveOps.map((o) => opToEntry(o, o.seq))])
            want.set(e.key, mergeEntry(want.get(e.key), e));
          for (const [k, e] of want) expect(stored.get(k)?.hlc).toBe(e?.hlc);
        },
      ),
    );
  });
});
