import type { RelayLimits } from '../../limits';

/** A usage error: printed with the command's help hint, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** A non-negative integer option, or undefined when absent. */
export function intOption(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new UsageError(`${name} must be a non-negative integer`);
  return n;
}

/** `--limit name=value` options as limits. */
export function limitOptions(list: string[] | undefined): Partial<RelayLimits> {
  const limits: Partial<RelayLimits> = {};
  for (const l of list ?? []) {
    const m = /^([A-Za-z]+)=(\d+)$/.exec(l);
    if (m === null) throw new UsageError(`--limit expects name=value, got ${l}`);
    limits[m[1] as keyof RelayLimits] = Number(m[2]);
  }
  return limits;
}
