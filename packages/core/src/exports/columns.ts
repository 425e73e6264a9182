/**
 * @mittsync/core/columns: entries by column and values kept as MessagePack, for stores that
 * keep catch-up pages as they arrive instead of an object per entry (the browser peer's
 * IndexedDB pages). A column page's keys, versions and values are bytes: these read them,
 * cut runs of them, and search sorted keys without making a string per entry. Not for
 * applications; it changes with the stores that use it.
 *
 * @example
 * ```ts
 * import { columnSize, keyAt, lowerBoundIn } from '@mittsync/core/columns';
 * const i = lowerBoundIn(page.cols, 'todo/'); // the first key >= 'todo/'
 * const first = i < columnSize(page.cols) ? keyAt(page.cols, i) : undefined;
 * ```
 *
 * @module @mittsync/core/columns
 */

export type { ColumnParts, ColumnRange, EntryColumns } from '../columns';
export {
  columnEntries,
  columnEntry,
  columnSize,
  columnsOf,
  hlcAt,
  indexIn,
  isTombstoneIn,
  keyAt,
  keysAscend,
  lowerBoundIn,
  packColumns,
  rangeEntries,
  rangesSize,
  startIn,
  valueBytesOf,
} from '../columns';
export { packedValueOf, plainEntry } from '../packed';
export { lowerBound, upperBound } from '../search';
export { textAt } from '../utf8';
