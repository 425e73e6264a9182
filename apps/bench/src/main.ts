import { writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import type { Metric } from './metric';
import { coreMetrics } from './metrics/core';
import { wireMetrics } from './metrics/wire';

/**
 * `npm run bench -- [--quick] [--only a,b] [--json FILE]`: runs each metric in turn and prints
 * `<name> <value> <unit>` per line, then `ratio <a>/<b> <value>` for each headline figure
 * whose physical floor ran too; `--json` also writes them with machine and version info.
 */
async function loadMetrics(): Promise<Metric[]> {
  const all = [...coreMetrics, ...wireMetrics];
  // Metrics of other packages are optional modules: a package that is not built yet is skipped.
  for (const mod of ['./metrics/relay', './metrics/floors', './metrics/peer', './metrics/edge']) {
    try {
      const m = (await import(mod)) as Record<string, Metric[]>;
      for (const list of Object.values(m)) if (Array.isArray(list)) all.push(...list);
    } catch (e) {
      if ((e as { code?: string }).code !== 'ERR_MODULE_NOT_FOUND') throw e;
    }
  }
  return all;
}

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const onlyArg = args[args.indexOf('--only') + 1];
const only = args.includes('--only') && onlyArg ? new Set(onlyArg.split(',')) : undefined;
const jsonFile = args.includes('--json') ? args[args.indexOf('--json') + 1] : undefined;

/** What a metric is printed as in this run (its quick workload's own name under --quick). */
const printed = (m: Metric) => (quick ? (m.quickName ?? m.name) : m.name);
// --only takes either name of a metric.
const metrics = (await loadMetrics()).filter(
  (m) => only === undefined || only.has(m.name) || (m.quickName !== undefined && only.has(m.quickName)),
);
if (only !== undefined) {
  const known = new Set(
    metrics.flatMap((m) => [m.name, ...(m.quickName === undefined ? [] : [m.quickName])]),
  );
  const unknown = [...only].filter((n) => !known.has(n));
  if (unknown.length > 0) {
    console.error(`unknown metric(s): ${unknown.join(', ')}`);
    process.exit(2);
  }
}
const results: {
  name: string;
  value: number;
  unit: string;
  description: string;
  target?: Metric['target'];
}[] = [];
let failed = false;
for (const m of metrics) {
  try {
    const raw = await m.run({ quick });
    const value = Number.isInteger(raw) ? raw : Number(raw.toFixed(2));
    results.push({
      name: printed(m),
      value,
      unit: m.unit,
      description: m.description,
      ...(m.target ? { target: m.target } : {}),
    });
    console.log(`${printed(m)} ${value} ${m.unit}`);
  } catch (e) {
    failed = true;
    console.error(`${printed(m)} FAILED: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  }
}
/**
 * Headline figure over its physical floor (a figure of the same work minus Mittsync): how far
 * the product is from what the machine allows. By canonical name; printed with the names the
 * figures were printed under.
 */
const RATIOS: [figure: string, floor: string][] = [
  ['relay_ingest_ops_s', 'sqlite_floor_ops_s'],
  ['write_observe_p50_ms', 'ws_rtt_p50_ms'],
  ['write_observe_p99_ms', 'ws_rtt_p99_ms'],
  ['join_100k_ms', 'idb_floor_100k_ms'],
  ['join_1m_ms', 'idb_floor_1m_ms'],
];
const byName = new Map(metrics.map((m) => [m.name, m]));
const measured = new Map(results.map((r) => [r.name, r.value]));
const ratios: { name: string; value: number }[] = [];
for (const [a, b] of RATIOS) {
  const ma = byName.get(a);
  const mb = byName.get(b);
  if (ma === undefined || mb === undefined) continue;
  const va = measured.get(printed(ma));
  const vb = measured.get(printed(mb));
  if (va === undefined || vb === undefined || vb === 0) continue;
  const name = `${printed(ma)}/${printed(mb)}`;
  const value = Number((va / vb).toFixed(2));
  ratios.push({ name, value });
  console.log(`ratio ${name} ${value}`);
}
if (jsonFile !== undefined) {
  const cpu = cpus();
  writeFileSync(
    jsonFile,
    `${JSON.stringify(
      {
        date: new Date().toISOString(),
        quick,
        machine: {
          cpus: cpu.length,
          cpuModel: cpu[0]?.model,
          memoryGiB: Math.round(totalmem() / 2 ** 30),
          platform: process.platform,
        },
        versions: { node: process.version, mittsync: '0.1.0' },
        results,
        ratios,
      },
      null,
      2,
    )}\n`,
  );
}
process.exit(failed ? 1 : 0);
