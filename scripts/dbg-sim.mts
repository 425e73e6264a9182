// Traces one simulator seed: `npx tsx scripts/dbg-sim.mts <seed> [node]` prints every frame
// the given node (e.g. n1) sends and receives, with virtual times.
import { runSeed } from '../packages/core/src/sim/run.ts';

const r = await runSeed(Number(process.argv[2]), () => new Promise((res) => setImmediate(res)), {
  log: console.log,
  node: process.argv[3],
});
console.log(JSON.stringify(r, null, 1));
