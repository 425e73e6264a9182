import { MittsyncError } from '@mittsync/core';

function errorName(e: unknown): string {
  if (typeof e === 'object' && e !== null && 'name' in e) return String((e as { name: unknown }).name);
  return '';
}

/** True for errors that mean "this connection is gone", after which one reopen is worth trying. */
export function isConnectionError(e: unknown): boolean {
  const name = errorName(e);
  if (name === 'InvalidStateError' || name === 'UnknownError') return true;
  const msg = e instanceof Error ? e.message : String(e);
  return /connection (is|was) clos|database (connection )?(is )?clos|connection to indexed database server lost/i.test(
    msg,
  );
}

/** True when the browser refused the write for lack of space. */
export function isQuotaError(e: unknown): boolean {
  const name = errorName(e);
  return name === 'QuotaExceededError' || name === 'NS_ERROR_DOM_QUOTA_REACHED';
}

/** Maps an IndexedDB failure to a {@link MittsyncError} a user can act on. */
export function toStorageError(e: unknown, what: string): MittsyncError {
  if (e instanceof MittsyncError) return e;
  if (isQuotaError(e)) {
    return new MittsyncError(
      'STORAGE_QUOTA',
      `${what}: the browser's storage quota for this site is used up; nothing of this write was applied. Free space (or ask for persistent storage) and it will be retried.`,
      { cause: e },
    );
  }
  const msg = e instanceof Error ? `${errorName(e)}: ${e.message}` : String(e);
  return new MittsyncError('STORAGE_UNAVAILABLE', `${what}: IndexedDB failed (${msg})`, { cause: e });
}
