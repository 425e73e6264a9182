import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { type Metric, NotMeasured } from './metric';
import { coreMetrics } from './metrics/core';
import { root } from './metrics/peer/harness';
import { wireMetrics } from './metrics/wire';
import { formatValue } from './report/format';
import { commit, machine, versions } from './report/machine';
import { writeMarkdown } from './report/markdown';
import type { MetricResult, RatioResult, Report } from './report/report';
import { evaluate, ISSUE_TARGETS, RATIOS, type TargetResult } from './report/targets';

/**
 * `npm run bench -- [--quick] [--only a,b] [--json FILE] [--render]`: runs each metric in turn
 * and prints `<name> <value> <unit>` per line (`note <name> <text>` beside a figure that needs
 * one, or instead of a compared system's figure that could not be measured), then
 * `ratio <a>/<b> <value>` for each pair that ran (a figure over its floor, or a compared
 * system's figure over ours), then `target <metric> ...` for each target of issue 20.
 *
 * A full run writes apps/bench/results/latest.json and regenerates BENCHMARKS.md with its
 * charts (apps/bench/results/*.svg); --quick writes apps/bench/results/quick.json only; a run
 * with --only writes nothing unless --json says where. --render regenerates BENCHMARKS.md
 * and the charts from latest.json without measuring.
 */

const resultsDir = join(root, 'apps', 'bench', 'results');

async function loadMetrics(): Promise<Metric[]> {
  const all = [...coreMetrics, ...wireMetrics];
  // Metrics of other packages are optional modules: a package that is not built yet is skipped.
  for (const mod of [
    './metrics/relay',
    './metrics/tombstones',
    './metrics/floors',
    './metrics/peer',
    './metrics/edge',
    './metrics/yjs',
    './metrics/automerge',
    './metrics/cli',
  ]) {
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
if (args.includes('--render')) {
  const report = JSON.parse(readFileSync(join(resultsDir, 'latest.json'), 'utf8')) as Report;
  writeMarkdown(report, root, resultsDir);
  console.log('BENCHMARKS.md and apps/bench/results/*.svg regenerated from latest.json');
  process.exit(0);
}
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

/** Metrics whose --quick workload is smaller than their name's: full-workload targets skip them. */
const quickWorkload = new Set(
  quick ? metrics.filter((m) => m.quickName !== undefined).map((m) => m.name) : [],
);
const results: MetricResult[] = [];
const values = new Map<string, number>();
let failed = false;
for (const m of metrics) {
  const name = printed(m);
  const base = {
    name,
    canonical: m.name,
    system: m.system ?? 'mittsync',
    unit: m.unit,
    description: m.description,
    repetitions: {
      count: quick ? (m.repetitions?.quick ?? 1) : (m.repetitions?.full ?? 1),
      of: m.repetitions?.of ?? 'run',
    },
  } as const;
  if (m.onlyWhenAsked !== undefined && only === undefined) {
    const note = `not measured: ${m.onlyWhenAsked}; --only ${name} runs it`;
    results.push({ ...base, value: null, targets: [], note });
    console.log(`note ${name} ${note}`);
    continue;
  }
  try {
    const raw = await m.run({ quick });
    const { value: v, note } = typeof raw === 'number' ? { value: raw, note: undefined } : raw;
    const value = Number.isInteger(v) || !Number.isFinite(v) ? v : Number(v.toFixed(2));
    values.set(m.name, value);
    // JSON has no Infinity: a latency percentile that fell on a write never observed.
    const finite = Number.isFinite(value);
    results.push({
      ...base,
      value: finite ? value : null,
      targets: [],
      ...(note === undefined && finite
        ? {}
        : { note: note ?? 'writes never observed reached this percentile' }),
    });
    console.log(`${name} ${value} ${m.unit}`);
    if (note !== undefined) console.log(`note ${name} ${note}`);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    if (m.system !== undefined || e instanceof NotMeasured) {
      // A compared system that cannot do the workload is a finding, not a failure of the bench.
      const note = `not measured: ${message.split('\n')[0]}`;
      results.push({ ...base, value: null, targets: [], note });
      console.log(`note ${name} ${note}`);
      if (process.env.PEER_DEBUG && e instanceof Error) console.error(e.stack);
    } else {
      failed = true;
      console.error(`${name} FAILED: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    }
  }
}

const byName = new Map(metrics.map((m) => [m.name, m]));
const ratios: RatioResult[] = [];
for (const { a, b, kind } of RATIOS) {
  const ma = byName.get(a);
  const mb = byName.get(b);
  const va = values.get(a);
  const vb = values.get(b);
  if (ma === undefined || mb === undefined || va === undefined || vb === undefined || vb === 0) continue;
  if (!Number.isFinite(va) || !Number.isFinite(vb)) continue;
  const name = `${printed(ma)}/${printed(mb)}`;
  const value = Number((va / vb).toFixed(2));
  ratios.push({ name, value, kind });
  console.log(`ratio ${name} ${value}`);
}

const get = (n: string) => {
  const v = values.get(n);
  return v === undefined || !Number.isFinite(v) ? undefined : v;
};
const targets = ISSUE_TARGETS.filter((t) => byName.has(t.metric)).map(
  (t): TargetResult => ({ ...evaluate(t, get, quickWorkload), source: 'issue 20' }),
);
for (const t of targets) {
  const shown = byName.get(t.metric);
  const n = shown === undefined ? t.metric : printed(shown);
  const verdict =
    t.met === undefined
      ? `not evaluated (${t.why})`
      : `${t.met ? 'met' : 'not met'} (${t.value} against ${t.limit})`;
  console.log(`target ${n} ${t.text}: ${verdict}`);
}
// Each figure's own targets too: the issue's, and its metric's where the issue sets no bound.
for (const r of results) {
  const m = byName.get(r.canonical);
  const issue = targets.filter((t) => t.metric === r.canonical);
  const bounded = ISSUE_TARGETS.some((t) => t.metric === r.canonical && typeof t.limit === 'number');
  if (m?.target !== undefined && !bounded) {
    const { value, better } = m.target;
    const text = `${better === 'lower' ? 'at most' : 'at least'} ${formatValue(value)} ${m.unit}`;
    issue.unshift({
      ...evaluate({ metric: m.name, better, limit: value, text }, get, quickWorkload),
      source: 'metric',
    });
  }
  r.targets = issue;
}

const outFile =
  jsonFile ?? (only !== undefined ? undefined : join(resultsDir, quick ? 'quick.json' : 'latest.json'));
if (outFile !== undefined) {
  const report: Report = {
    date: new Date().toISOString(),
    quick,
    command: `npm run bench${args.length > 0 ? ` -- ${args.join(' ')}` : ''}`,
    commit: commit(),
    machine: await machine(),
    versions: versions(),
    metrics: results,
    ratios,
    targets,
  };
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, `${JSON.stringify(report, null, 2)}\n`);
  console.error(`results written to ${outFile}`);
  // The published report comes from full runs of every metric only.
  if (!quick && only === undefined && jsonFile === undefined) {
    writeMarkdown(report, root, resultsDir);
    console.error('BENCHMARKS.md and apps/bench/results/*.svg regenerated');
  }
}
process.exit(failed ? 1 : 0);
