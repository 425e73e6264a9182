/** One published number: measured by `run`, never typed in. */
export interface Metric {
  /** snake_case name printed as the first column, e.g. `core_apply_ops_s`. */
  name: string;
  /**
   * The name printed under `--quick` when `--quick` measures a smaller workload than `name`
   * promises (`join_20k_ms` for `join_100k_ms`): a name always says what was measured. Absent
   * when `--quick` only repeats the same workload fewer times or for less long.
   */
  quickName?: string;
  /** Unit printed after the value, e.g. `ops/s`, `ms`, `MB`. */
  unit: string;
  /** What is measured and how, including what `--quick` changes. */
  description: string;
  /**
   * An absolute target (a floor for throughputs, a ceiling for latencies), for the report;
   * targets relative to other figures are in `report/targets.ts`.
   */
  target?: { value: number; better: 'higher' | 'lower' };
  /** How many times the figure's workload ran (the value is their median or percentile). */
  repetitions?: Repetitions;
  /**
   * The system measured when not Mittsync. A compared system's metric that cannot complete
   * prints a `note` line and does not fail the run.
   */
  system?: 'yjs' | 'automerge';
  /**
   * Runs only when named by --only; otherwise the run prints this reason in a `note` line. For
   * a compared system's workload known to outlast any sensible bound (minutes of its own set-up).
   */
  onlyWhenAsked?: string;
  run(ctx: { quick: boolean }): Promise<number | Measured>;
}

/** `count` runs or samples of the workload (`quick` under --quick), e.g. 5 `joins`, 2,000 `samples`. */
export interface Repetitions {
  full: number;
  quick: number;
  of: string;
}

/** A value with a remark the report prints beside it (what a compared system achieved instead). */
export interface Measured {
  value: number;
  note?: string;
}

/** A figure that could not be measured this run, for a reason worth printing (not a bug). */
export class NotMeasured extends Error {
  override name = 'NotMeasured';
}

/** Percentile `p` (0..1) of `sorted` (ascending): the element at `floor(length * p)`. */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? Number.NaN;
}

/** The median of `xs` (any order): the upper one of an even count, as `percentile` takes it. */
export function median(xs: readonly number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return percentile(sorted, 0.5);
}
