/**
 * @mittsync/core/model: the data model's rules as functions, for code that implements storage
 * or a relay, and for tests: hybrid logical clocks, versions and last-writer-wins merge, the
 * order-independent bucket checksum, size estimates and random ids. The types they take
 * (`Entry`, `Op`, `Hlc`, `Checksum`...) come from `@mittsync/core`.
 *
 * @example
 * ```ts
 * import { encodeHlc, mergeEntry } from '@mittsync/core/model';
 * const hlc = encodeHlc(Date.now(), 0, replicaId);
 * const winner = mergeEntry(stored, { key, hlc, seq: 0, value });
 * ```
 *
 * @module @mittsync/core/model
 */

export {
  checksumAdd,
  checksumEquals,
  checksumOf,
  checksumRemove,
  checksumReplace,
  emptyChecksum,
} from '../checksum';
export { randomId } from '../env';
export { checkDrift, compareHlc, decodeHlc, encodeHlc, HlcClock, hlcNode, hlcWall, isHlc } from '../hlc';
export { approxBytes, keyOrder, mergeEntry, opBytes, opToEntry, versionOf, wins } from '../model';
