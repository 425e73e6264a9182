import type { Hlc } from './hlc';

/** Number of key slots the purged-key record keeps a maximum HLC for. */
export const PURGED_SLOTS = 1024;

/** The slot of `key`: FNV-1a over its UTF-16 code units. Stable across runtimes and versions. */
export function purgedSlot(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % PURGED_SLOTS;
}

/**
 * A compact record of purged tombstones: per slot of keys, the greatest HLC of a tombstone
 * purged from it. It never wrongly says "never deleted": a key whose tombstone at HLC `t` was
 * purged has `t <= slot max`, so a write with an HLC at or below the slot max is undecidable
 * (refused), and a write above it wins over any purged tombstone of its key (accepted). Only
 * old writes to absent keys that share a slot with a newer purged tombstone are refused
 * without need. At most {@link PURGED_SLOTS} HLCs per bucket.
 */
export class PurgedKeys {
  private readonly slots = new Map<number, Hlc>();

  constructor(initial: Iterable<readonly [number, Hlc]> = []) {
    for (const [s, h] of initial) this.slots.set(s, h);
  }

  /** The greatest purged HLC in `key`'s slot ('' when none). */
  maxFor(key: string): Hlc {
    return this.slots.get(purgedSlot(key)) ?? '';
  }

  /**
   * Whether a write at `hlc` to `key`, which the relay does not hold, may be older than a
   * purged tombstone of that key (then the relay cannot accept it).
   */
  undecidable(key: string, hlc: Hlc): boolean {
    const max = this.maxFor(key);
    return max !== '' && hlc <= max;
  }

  /** Records a purged tombstone; returns the slot if its maximum rose (to be persisted). */
  record(key: string, hlc: Hlc): number | undefined {
    const slot = purgedSlot(key);
    const cur = this.slots.get(slot) ?? '';
    if (hlc <= cur) return undefined;
    this.slots.set(slot, hlc);
    return slot;
  }

  get(slot: number): Hlc | undefined {
    return this.slots.get(slot);
  }

  /** Slots with a purged tombstone. */
  get size(): number {
    return this.slots.size;
  }
}
