/** Formats a figure for the report: thousands separated, 3 significant digits or more. */
export function formatValue(v: number): string {
  const digits = Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2;
  return v.toLocaleString('en-US', { maximumFractionDigits: digits });
}
