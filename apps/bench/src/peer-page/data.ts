import type { Value } from '@mittsync/core';

/**
 * The benchmark bucket's data, shared by the Node side of `apps/bench` (which seeds and writes
 * it) and the bench page (whose IndexedDB floor writes the same shape).
 */
export const benchKey = (i: number): string => `k${String(i).padStart(7, '0')}`;

/** About 100 bytes as JSON. */
export const benchValue = (i: number, rev = 0): Value => ({
  name: `item ${i}`,
  qty: i % 1000,
  rev,
  note: 'n'.repeat(56),
});
