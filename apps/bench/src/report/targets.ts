/**
 * Targets and ratios the report states: which figures are compared with which, and the
 * targets of issue 20 (full workloads, one run), evaluated on the figures of the run.
 */

/** A ratio `a/b` printed as `ratio <a>/<b> <value>` (by canonical names). */
export interface RatioSpec {
  a: string;
  b: string;
  /**
   * `floor`: a figure over its physical floor (how far from what the machine allows);
   * `versus`: a compared system's figure over ours (above 1: we are faster);
   * `runtime`: the edge relay's figure over the Node relay's, same workload.
   */
  kind: 'floor' | 'versus' | 'runtime';
}

export const RATIOS: RatioSpec[] = [
  { a: 'relay_ingest_ops_s', b: 'sqlite_floor_ops_s', kind: 'floor' },
  { a: 'write_observe_p50_ms', b: 'ws_rtt_p50_ms', kind: 'floor' },
  { a: 'write_observe_p99_ms', b: 'ws_rtt_p99_ms', kind: 'floor' },
  { a: 'join_100k_ms', b: 'idb_floor_100k_ms', kind: 'floor' },
  { a: 'join_1m_ms', b: 'idb_floor_1m_ms', kind: 'floor' },
  { a: 'yjs_join_100k_ms', b: 'join_100k_ms', kind: 'versus' },
  { a: 'yjs_join_1m_ms', b: 'join_1m_ms', kind: 'versus' },
  { a: 'yjs_cold_start_100k_ms', b: 'cold_start_100k_ms', kind: 'versus' },
  { a: 'yjs_write_observe_p50_ms', b: 'write_observe_browser_p50_ms', kind: 'versus' },
  { a: 'yjs_write_observe_p99_ms', b: 'write_observe_browser_p99_ms', kind: 'versus' },
  { a: 'automerge_join_100k_ms', b: 'join_100k_ms', kind: 'versus' },
  { a: 'edge_join_100k_ms', b: 'join_100k_ms', kind: 'runtime' },
  { a: 'edge_ingest_ops_s', b: 'relay_ingest_ops_s', kind: 'runtime' },
  { a: 'edge_write_observe_p99_ms', b: 'write_observe_p99_ms', kind: 'runtime' },
];

/** A target on `metric`: at most (`lower`) or at least (`higher`) `limit`, or `times` x `of`. */
export interface TargetSpec {
  metric: string;
  better: 'lower' | 'higher';
  limit: number | { times: number; of: string };
  /** As the issue words it. */
  text: string;
}

/** Issue 20's targets: floors and Yjs in the same run, full workloads. */
export const ISSUE_TARGETS: TargetSpec[] = [
  {
    metric: 'join_100k_ms',
    better: 'lower',
    limit: { times: 1 / 5, of: 'yjs_join_100k_ms' },
    text: 'at least 5x faster than yjs_join_100k_ms',
  },
  {
    metric: 'join_100k_ms',
    better: 'lower',
    limit: { times: 2, of: 'idb_floor_100k_ms' },
    text: 'at most 2x idb_floor_100k_ms',
  },
  {
    metric: 'join_1m_ms',
    better: 'lower',
    limit: { times: 2, of: 'idb_floor_1m_ms' },
    text: 'at most 2x idb_floor_1m_ms',
  },
  { metric: 'join_1m_heap_mb', better: 'lower', limit: 150, text: 'at most 150 MB' },
  { metric: 'cold_start_100k_ms', better: 'lower', limit: 150, text: 'at most 150 ms' },
  { metric: 'write_observe_p99_ms', better: 'lower', limit: 8, text: 'at most 8 ms' },
  { metric: 'wire_overhead_bytes_per_op', better: 'lower', limit: 12, text: 'at most 12 B per live op' },
  {
    metric: 'relay_ingest_ops_s',
    better: 'higher',
    limit: { times: 0.5, of: 'sqlite_floor_ops_s' },
    text: 'at least 0.5x sqlite_floor_ops_s',
  },
  // Issue 21: serving a spec reads only its part of the bucket.
  {
    metric: 'join_spec_100k_of_1m_ms',
    better: 'lower',
    limit: { times: 1.2, of: 'join_100k_ms' },
    text: 'at most 1.2x join_100k_ms (issue 21)',
  },
  // Issue 19's floors for the edge relay (workerd, one Durable Object per bucket).
  {
    metric: 'edge_join_100k_ms',
    better: 'lower',
    limit: { times: 1.5, of: 'join_100k_ms' },
    text: 'at most 1.5x join_100k_ms (edge relay, issue 19)',
  },
  {
    metric: 'edge_write_observe_p99_ms',
    better: 'lower',
    limit: 15,
    text: 'at most 15 ms (edge relay, issue 19)',
  },
];

export interface TargetResult {
  metric: string;
  text: string;
  /** Issue 20's list, or the metric's own target (from an earlier issue). */
  source?: 'issue 20' | 'metric';
  /** The bound in the metric's unit, when its figures ran. */
  limit?: number;
  value?: number;
  met?: boolean;
  /** Why it was not evaluated. */
  why?: string;
}

/**
 * Evaluates `spec` on the run's figures (by canonical name; `quickWorkload` holds the metrics
 * whose --quick workload is smaller, for which a full-workload target does not apply).
 */
export function evaluate(
  spec: TargetSpec,
  value: (name: string) => number | undefined,
  quickWorkload: ReadonlySet<string>,
): TargetResult {
  const base = { metric: spec.metric, text: spec.text };
  const of = typeof spec.limit === 'number' ? undefined : spec.limit.of;
  if (quickWorkload.has(spec.metric) || (of !== undefined && quickWorkload.has(of)))
    return { ...base, why: 'set for the full workload; --quick measures a smaller one' };
  const v = value(spec.metric);
  if (v === undefined) return { ...base, why: `${spec.metric} did not run` };
  let limit: number;
  if (typeof spec.limit === 'number') limit = spec.limit;
  else {
    const ref = value(spec.limit.of);
    if (ref === undefined) return { ...base, value: v, why: `${spec.limit.of} did not run` };
    limit = Number((ref * spec.limit.times).toFixed(2));
  }
  const met = spec.better === 'lower' ? v <= limit : v >= limit;
  return { ...base, value: v, limit, met };
}
