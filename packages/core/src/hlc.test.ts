import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MittsyncError } from './errors';
import { checkDrift, decodeHlc, encodeHlc, HlcClock, isHlc } from './hlc';

describe('HLC', () => {
  it('serializes compactly and sorts like the clock order', () => {
    const a = encodeHlc(1_700_000_000_000, 0, 'rA');
    const b = encodeHlc(1_700_000_000_000, 1, 'rA');
    const c = encodeHlc(1_700_000_000_001, 0, 'rA');
    expect(a.length).toBe(18);
    expect([c, b, a].sort()).toEqual([a, b, c]);
    expect(decodeHlc(b)).toEqual({ wall: 1_700_000_000_000, counter: 1, node: 'rA' });
  });

  it('scenario 26: rejects absurd HLC values (negative, beyond 2^53, NaN, fractional)', () => {
    for (const wall of [-1, 2 ** 53 + 2, Number.NaN, 1.5, Number.POSITIVE_INFINITY, 2 ** 48]) {
      expect(() => encodeHlc(wall, 0, 'rA')).toThrowError(MittsyncError);
    }
    expect(() => encodeHlc(1, -1, 'rA')).toThrow(/counter/);
    expect(() => encodeHlc(1, 0x10000, 'rA')).toThrow(/counter/);
    expect(() => encodeHlc(1, 0, 'bad id!')).toThrow(/node/);
    for (const s of ['', 'zz', '-0000000000010000rA', `${'f'.repeat(16)}`, 'NaN', '0000000000010000r A']) {
      expect(isHlc(s)).toBe(false);
      expect(() => decodeHlc(s)).toThrowError(expect.objectContaining({ code: 'BAD_HLC' }));
    }
  });

  it('scenario 23: stays monotonic when the wall clock jumps backwards (read-your-writes holds)', () => {
    let now = 1_000_000;
    const clock = new HlcClock('rA', () => now);
    const first = clock.tick();
    now -= 3_600_000; // an hour back
    const second = clock.tick();
    const third = clock.tick();
    expect(second > first).toBe(true);
    expect(third > second).toBe(true);
  });

  it('is monotonic across arbitrary clock jumps and observed remote timestamps (property)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ jump: fc.integer({ min: -10_000_000, max: 10_000_000 }) }),
            fc.record({ observe: fc.integer({ min: 0, max: 2_000_000_000 }) }),
          ),
          { maxLength: 200 },
        ),
        (steps) => {
          let now = 1_000_000_000;
          const clock = new HlcClock('rA', () => now);
          let last = clock.tick();
          for (const s of steps) {
            if ('jump' in s) now = Math.max(0, now + s.jump);
            else clock.observe(encodeHlc(s.observe, 5, 'rB'));
            const next = clock.tick();
            if (!(next > last)) return false;
            last = next;
          }
          return true;
        },
      ),
    );
  });

  it('survives counter exhaustion within one millisecond', () => {
    const clock = new HlcClock('rA', () => 5);
    let last = clock.tick();
    for (let i = 0; i < 70_000; i++) {
      const next = clock.tick();
      expect(next > last).toBe(true);
      last = next;
    }
  });

  it('restores a floor so a restart never reissues an older timestamp', () => {
    const floor = encodeHlc(9_000, 7, 'rA');
    const clock = new HlcClock('rA', () => 1_000, floor);
    expect(clock.tick() > floor).toBe(true);
  });

  it('scenario 24: equal wall times on two replicas tie-break by replicaId, identically everywhere', () => {
    const a = new HlcClock('rA', () => 42).tick();
    const b = new HlcClock('rB', () => 42).tick();
    expect(a < b).toBe(true);
    expect([b, a].sort()).toEqual([a, b]);
  });

  it('scenario 22: a timestamp an hour ahead is rejected as CLOCK_DRIFT', () => {
    const ahead = encodeHlc(1_000_000 + 3_600_000, 0, 'rA');
    expect(() => checkDrift(ahead, 1_000_000, 60_000)).toThrowError(
      expect.objectContaining({ code: 'CLOCK_DRIFT' }),
    );
    expect(() => checkDrift(encodeHlc(1_030_000, 0, 'rA'), 1_000_000, 60_000)).not.toThrow();
  });
});
