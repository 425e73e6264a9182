import { describe, expect, it } from 'vitest';
import { runSeed } from './run';

const settle = () => new Promise<void>((r) => setImmediate(r));

describe('simulator', () => {
  it('scenario 27: seeded runs with drops, dups, reorders, crashes, joins and skew converge', async () => {
    for (let seed = 1; seed <= 40; seed++) {
      const res = await runSeed(seed, settle);
      expect(res.violations, `seed ${seed}`).toEqual([]);
      expect(res.stats.writes).toBeGreaterThan(0);
    }
  });

  it('is deterministic: a seed reproduces exactly', async () => {
    const a = await runSeed(1234, settle);
    const b = await runSeed(1234, settle);
    expect(b).toEqual(a);
  });
});
