import type { BucketState, CatchUp, MergedSpan } from './bucket-state';
import { type Entry, type SeqOp, type Version, versionOf } from './model';

/**
 * What a fresh join (storage held nothing of the bucket but the keys it keeps) knows storage
 * holds without reading it: the versions in `CatchUp.kept` and the spans of the pages it has
 * merged (`CatchUp.merged`). Pure functions over a {@link CatchUp}; the download merge and the
 * live stream use them so a join of many keys never reads its own storage back.
 */

/** In `CatchUp.kept`: a key storage has nothing of (a held op beat its download). */
export const ABSENT: Version = { hlc: '', deleted: true };
/** From {@link knownVersions}: every op of the key is older than what storage has. */
export const OLDER: Version = { hlc: '\uffff', deleted: true };

/** Records versions a fresh join's later downloads must not overwrite (see `CatchUp.kept`). */
export function keep(cu: CatchUp, entries: readonly Entry[], maxKept: number): void {
  for (const e of entries) cu.kept.set(e.key, versionOf(e));
  boundKept(cu, maxKept);
}

/** Past `maxKept` kept keys the join stops being fresh: its merges read storage instead. */
export function boundKept(cu: CatchUp, maxKept: number): void {
  if (cu.kept.size > maxKept) {
    cu.fresh = false;
    cu.kept.clear();
  }
}

/** Records a merged page's span, keeping `cu.merged` sorted; a page without one ends it. */
export function addMerged(cu: CatchUp, span: MergedSpan | undefined): void {
  if (cu.merged === null) return;
  if (span === undefined) {
    cu.merged = null;
    return;
  }
  const at = spanIndex(cu.merged, span.after) + 1;
  cu.merged.splice(at, 0, span);
}

/**
 * Index of the last span whose `after` is below `key` (undefined sorts first), or -1. Its own
 * loop: search.ts searches arrays of keys, and this reads a field that may be undefined.
 */
function spanIndex(spans: readonly MergedSpan[], key: string | undefined): number {
  let lo = 0;
  let hi = spans.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const after = (spans[mid] as MergedSpan).after;
    if (after === undefined || (key !== undefined && after < key)) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/** The merged span holding `key`, if any. */
export function spanOf(spans: readonly MergedSpan[], key: string): MergedSpan | undefined {
  const s = spans[spanIndex(spans, key)];
  return s !== undefined && (s.upTo === undefined || key <= s.upTo) ? s : undefined;
}

/**
 * What storage holds of the keys of `ops` during a fresh join, where that is known without
 * reading it (the rest is read). Storage then holds, of a key, its version in `kept` (local
 * writes, applied live ops, or {@link ABSENT}); else the downloaded entry if a merged page
 * covered the key; else nothing. A page read as of relay seq `head` holds the relay's state
 * of its keys at `head`, and the relay delivers only ops that changed state, so an op with
 * `seq <= head` is no newer than the download ({@link OLDER}), and the first op after `head`
 * names that state in `prev`. That needs every op of the key between `head` and it: true up
 * to the mitt's contiguous seq (ops received earlier were applied, and kept if they won).
 * Returns undefined when nothing is known this way.
 */
export function knownVersions(
  b: BucketState,
  ops: readonly SeqOp[],
): Map<string, Version | undefined> | undefined {
  const cu = b.catchUp;
  const mitt = b.mitt;
  if (cu === null || !cu.fresh || cu.merged === null || mitt === null) return undefined;
  const spans = cu.merged;
  const out = new Map<string, Version | undefined>();
  const first = new Map<string, SeqOp>();
  for (const op of ops) {
    const k = op.key;
    if (out.has(k)) continue;
    const kept = cu.kept.get(k);
    if (kept !== undefined) {
      out.set(k, kept);
      continue;
    }
    const span = spanOf(spans, k);
    if (span === undefined) {
      out.set(k, undefined); // not downloaded yet: nothing stored
      continue;
    }
    if (op.seq <= span.head) continue;
    const f = first.get(k);
    if (f === undefined || op.seq < f.seq) first.set(k, op);
  }
  for (const op of ops) {
    const k = op.key;
    if (out.has(k)) continue;
    const f = first.get(k);
    if (f === undefined) out.set(k, OLDER);
    else if (f.prev !== undefined && f.seq <= mitt.upTo) out.set(k, f.prev ?? undefined);
    // else: read storage
  }
  return out;
}
