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
  /** Target from the issue, for the report (a floor for throughputs, a ceiling for latencies). */
  target?: { value: number; better: 'higher' | 'lower' };
  run(ctx: { quick: boolean }): Promise<number>;
}

/** Percentile `p` (0..1) of `sorted` (ascending): the element at `floor(length * p)`. */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? Number.NaN;
}
