import type { Machine } from './machine';
import type { TargetResult } from './targets';

/** The results file of a run (`apps/bench/results/latest.json`, `quick.json`). */
export interface Report {
  date: string;
  /** --quick: smaller workloads (under their own names) and fewer repetitions. */
  quick: boolean;
  command: string;
  commit: string;
  machine: Machine;
  versions: Record<string, string>;
  metrics: MetricResult[];
  ratios: RatioResult[];
  /** Issue 20's targets, evaluated on this run. */
  targets: TargetResult[];
}

export interface MetricResult {
  /** As printed: the quick workload's own name under --quick. */
  name: string;
  /** The full workload's name (what targets, ratios and the report's rows refer to). */
  canonical: string;
  system: 'mittsync' | 'yjs' | 'automerge';
  /** Null when it could not be measured (see `note`). */
  value: number | null;
  unit: string;
  description: string;
  repetitions: { count: number; of: string };
  /** Every target on this figure (its own and the issue's), evaluated. */
  targets: TargetResult[];
  note?: string;
}

export interface RatioResult {
  /** `<a>/<b>` with the names printed. */
  name: string;
  value: number;
  kind: 'floor' | 'versus' | 'runtime';
}
