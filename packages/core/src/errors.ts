/**
 * Every failure Mittsync reports carries one of these codes. The same strings travel on the
 * wire in `error` frames, so a client can branch on `err.code` wherever the error came from.
 */
export const ERROR_CODES = [
  'BAD_FRAME',
  'BAD_MESSAGE',
  'PROTOCOL_VERSION',
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'TOKEN_EXPIRED',
  'TOKEN_IN_URL',
  'FRAME_TOO_LARGE',
  'TOO_MANY_OPS',
  'KEY_TOO_LARGE',
  'VALUE_TOO_LARGE',
  'BAD_HLC',
  'CLOCK_DRIFT',
  'RATE_LIMITED',
  'TOO_MANY_BUCKETS',
  'SLOW_CONSUMER',
  'NOT_SUBSCRIBED',
  'ORIGIN_MISMATCH',
  'CHECKSUM_MISMATCH',
  /**
   * A write to a bucket opened with the `readOnly` policy: refused at once by the replica, and
   * by the relay for a push on a `readOnly` (or `copy`) subscription whatever the token allows.
   */
  'READ_ONLY',
  /**
   * A bucket's policy cannot change now: it has local ops the new policy would strand
   * (unacknowledged writes of a `replica`, fork writes of a `copy`). Wait for them to be
   * acknowledged, or keep the policy.
   */
  'POLICY_CONFLICT',
  /**
   * A value its bucket's schema refuses: a local write (before anything is stored; `detail.path`
   * names where, like `items[2].price`), or a push the relay's schema refuses (per op).
   */
  'INVALID_VALUE',
  /**
   * A write refused because the key holds a value written under a newer schema version than
   * this code's: writing the older shape over it would lose what the newer version added.
   * Upgrade the code (or pass `overwriteNewer` to replace it on purpose).
   */
  'SCHEMA_OUTDATED',
  /** A bucket that does not exist where it was asked for (nothing was ever written to it). */
  'NOT_FOUND',
  /**
   * A write outside the subscription's replication spec: a key the spec does not cover, or,
   * through a projection, a delete or a value with fields outside it. Refused per op, at once
   * by the replica and by the relay (the op is consumed and rejected in the ack).
   */
  'OUTSIDE_SPEC',
  /**
   * A write to a key the relay does not hold, at or below the HLC of a tombstone the relay
   * purged from that key's slot: the relay cannot tell whether the key was deleted after the
   * write, so it refuses it rather than resurrect or silently drop it. The write's promise
   * rejects with it; write the value again (with a fresh HLC) if it should exist.
   */
  'TOMBSTONE_PURGED',
  /**
   * An administrator forbade replication of the bucket in this direction for this principal:
   * out (subscriptions and pages) or in (pushes). A refused push leaves its ops in the outbox.
   */
  'REPLICATION_REFUSED',
  'STORAGE_QUOTA',
  'STORAGE_LOST',
  'STORAGE_UNAVAILABLE',
  'TIMEOUT',
  'CLOSED',
  'INTERNAL',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

const codeSet: ReadonlySet<string> = new Set(ERROR_CODES);

/** True when `code` is one of the documented {@link ErrorCode}s. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && codeSet.has(code);
}

/**
 * The one error class of Mittsync.
 *
 * @example
 * ```ts
 * try { await bucket.put('k', v, { ack: 'relay' }); }
 * catch (e) { if (e instanceof MittsyncError && e.code === 'CLOCK_DRIFT') fixClock(); }
 * ```
 */
export class MittsyncError extends Error {
  override readonly name = 'MittsyncError';
  readonly code: ErrorCode;
  /** Extra machine-readable detail (bucket, limit, observed value...). */
  readonly detail: Readonly<Record<string, unknown>> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options?: { cause?: unknown; detail?: Record<string, unknown> },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.detail = options?.detail;
  }
}

/** Wraps anything thrown into a MittsyncError, keeping the original as `cause`. */
export function toMittsyncError(err: unknown, fallback: ErrorCode = 'INTERNAL'): MittsyncError {
  if (err instanceof MittsyncError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new MittsyncError(fallback, message, { cause: err });
}
