/**
 * Start-up milestones of the worker, as wall-clock milliseconds (`timeOrigin + now()`), so a
 * page can line them up with its own clock: benchmarks read them through `client.debug()` to
 * see where a cold start spends its time. The first mark of a name wins.
 */
const marks: Record<string, number> = {};

export function mark(name: string): void {
  marks[name] ??= performance.timeOrigin + performance.now();
}

export function startupMarks(): Record<string, number> {
  return { ...marks };
}
