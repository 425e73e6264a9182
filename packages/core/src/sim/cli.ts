import { runSeed } from './run';

/**
 * `npm run sim -- --seeds N [--seed S] [--verbose]`: runs seeded simulations and prints
 * `sim: <N> seeds, <D> divergent` last; exits non-zero when any seed breaks an invariant.
 * Every third seed also silences replicas past the retention period (`--silence`: every seed;
 * `--no-silence`: none).
 */
const args = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const only = opt('--seed');
const count = Number(opt('--seeds') ?? '200');
const first = Number(opt('--from') ?? '1');
const verbose = args.includes('--verbose');
const seeds = only !== undefined ? [Number(only)] : Array.from({ length: count }, (_, i) => first + i);
const settle = () => new Promise<void>((r) => setImmediate(r));
const silenceOf = (seed: number): boolean =>
  args.includes('--silence') || (!args.includes('--no-silence') && seed % 3 === 0);
const silenced = { runs: 0, nodes: 0, retentionResets: 0 };

const started = Date.now();
let divergent = 0;
const totals = { steps: 0, writes: 0, joins: 0, readies: 0, crashes: 0, verified: 0, specChanges: 0 };
for (const seed of seeds) {
  const res = await runSeed(seed, settle, undefined, { silence: silenceOf(seed) });
  if (res.silence !== undefined) {
    silenced.runs++;
    silenced.nodes += res.silence.silenced;
    silenced.retentionResets += res.silence.retentionResets;
  }
  for (const k of Object.keys(totals) as (keyof typeof totals)[]) totals[k] += res.stats[k];
  if (res.violations.length > 0) {
    divergent++;
    console.log(`seed ${seed} FAILED (reproduce: npm run sim -- --seed ${seed})`);
    for (const v of res.violations.slice(0, 10)) console.log(`  ${v}`);
  } else if (verbose) {
    console.log(`seed ${seed} ok ${JSON.stringify(res.stats)}`);
  }
}
const secs = ((Date.now() - started) / 1000).toFixed(1);
console.log(
  `totals: ${totals.writes} writes, ${totals.joins} joins, ${totals.readies} readies, ${totals.crashes} crashes, ${totals.specChanges} spec changes, ${totals.verified} checksum checks, ${totals.steps} steps, ${secs} s`,
);
console.log(
  `silence: ${silenced.runs} runs, ${silenced.nodes} replicas silent past retention, ${silenced.retentionResets} retention resets`,
);
console.log(`sim: ${seeds.length} seeds, ${divergent} divergent`);
process.exit(divergent > 0 ? 1 : 0);
