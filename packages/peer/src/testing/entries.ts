import type { Entry } from '@mittsync/core';

/** A live entry for tests of the live-query path (seq does not matter there). */
export const set = (key: string, hlc: string, value: unknown): Entry => ({
  key,
  hlc,
  seq: 0,
  value: value as never,
});

/** A tombstone for the same tests. */
export const del = (key: string, hlc: string): Entry => ({ key, hlc, seq: 0, deleted: true });
