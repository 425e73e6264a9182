import type { ReadOutcome, TypedValues } from '@mittsync/core';
import type { Change, LiveResult, Row } from './live-query';

const UNREADABLE = Symbol('unreadable');
type Slot<T> = T | typeof UNREADABLE;

/**
 * Puts a typed bucket's schema between a live query and its callback: each delivered value is
 * read through the schema (migrated, validated) before the callback sees it. A value that
 * cannot be read (invalid, or of a newer schema version) is reported on the bucket's schema
 * status and leaves the result as if deleted, so `rows()` only ever holds values of type `T`.
 * With an async validator, deliveries wait for their values' checks, in order.
 *
 * Unlike an untyped live query, values are decoded when delivered, not on first read: the
 * schema has to see them.
 */
export function typedWatch<T>(
  typed: TypedValues<T>,
  callback: (r: LiveResult<T>) => void,
): (raw: LiveResult<unknown>) => void {
  let slots = new Map<string, Slot<T>>();
  let readable = 0;
  let queue: Promise<void> | null = null;
  let queued = 0;

  const apply = (raw: LiveResult<unknown>, outcomes: (ReadOutcome<T> | null)[]): void => {
    if (raw.initial) {
      slots = new Map();
      readable = 0;
    }
    const changes: Change<T>[] = [];
    raw.changes.forEach((c, i) => {
      const before = slots.get(c.key);
      if (before !== undefined && before !== UNREADABLE) readable--;
      const o = outcomes[i];
      if (c.deleted || o === null || o === undefined) {
        slots.delete(c.key);
        changes.push({ key: c.key, deleted: true, source: c.source });
        return;
      }
      if (o.ok) {
        slots.set(c.key, o.value);
        readable++;
        changes.push({ key: c.key, value: o.value, deleted: false, source: c.source });
      } else {
        slots.set(c.key, UNREADABLE);
        // Only news to a reader that had a value for it.
        if (raw.initial || (before !== undefined && before !== UNREADABLE))
          changes.push({ key: c.key, deleted: true, source: c.source });
      }
    });
    callback(new TypedDelivery(raw.initial, changes, readable, slots));
  };

  return (raw) => {
    const outcomes: (ReadOutcome<T> | Promise<ReadOutcome<T>> | null)[] = raw.changes.map((c) => {
      if (c.deleted) {
        typed.forget(c.key);
        return null;
      }
      return typed.read(c.key, c.value);
    });
    const async = outcomes.some((o) => o instanceof Promise);
    if (!async && queue === null) {
      apply(raw, outcomes as (ReadOutcome<T> | null)[]);
      return;
    }
    // Keep deliveries in order behind any still being checked.
    queued++;
    const prev = queue ?? Promise.resolve();
    queue = prev
      .then(() => Promise.all(outcomes))
      .then((done) => apply(raw, done))
      .catch(() => undefined)
      .finally(() => {
        if (--queued === 0) queue = null;
      });
  };
}

class TypedDelivery<T> implements LiveResult<T> {
  constructor(
    readonly initial: boolean,
    readonly changes: readonly Change<T>[],
    readonly size: number,
    private readonly slots: ReadonlyMap<string, Slot<T>>,
  ) {}

  get count(): number {
    return this.changes.length;
  }

  get(key: string): T | undefined {
    const v = this.slots.get(key);
    return v === UNREADABLE ? undefined : v;
  }

  rows(): Row<T>[] {
    const out: Row<T>[] = [];
    for (const [key, value] of this.slots) if (value !== UNREADABLE) out.push({ key, value });
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }
}
