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
    // 40 seeds take about 1.5 s alone, several times that on a loaded machine.
  }, 60_000);

  it('replicas silent past retention are reset where needed, and everyone converges', async () => {
    let resets = 0;
    for (let seed = 1; seed <= 20; seed++) {
      const res = await runSeed(seed, settle, undefined, { silence: true });
      expect(res.violations, `seed ${seed}`).toEqual([]);
      expect(res.silence?.silenced).toBeGreaterThan(0);
      resets += res.silence?.retentionResets ?? 0;
    }
    expect(resets).toBeGreaterThan(0);
  }, 60_000);

  it('is deterministic: a seed reproduces exactly', async () => {
    const a = await runSeed(1234, settle);
    const b = await runSeed(1234, settle);
    expect(b).toEqual(a);
  });
});
