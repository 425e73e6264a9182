/** The bucket the global setup seeds once (the demo's inventory, `sku-000000` onwards). */
export const SEEDED = { bucket: 'inventory-100k', rows: 100_000 } as const;

/** The data directory holding it (a stopped relay's), for `RelayProcess.start({ template })`. */
export function seededTemplate(): string {
  const dir = process.env.MITTSYNC_E2E_SEEDED;
  if (dir === undefined) throw new Error('MITTSYNC_E2E_SEEDED is not set: run through playwright.config.ts');
  return dir;
}
