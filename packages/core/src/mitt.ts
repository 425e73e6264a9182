import type { Hlc } from './hlc';
import { opBytes, type SeqOp, wins } from './model';

/** Bounds of a mitt; past either, the holder must spill (see {@link Mitt.isOverBound}). */
export interface MittBounds {
  /** Most ops held in memory. */
  maxOps: number;
  /** Most bytes (approximate encoded size) held in memory. */
  maxBytes: number;
  /** Most out-of-order seqs tracked ahead of a gap before the gap counts as a loss. */
  maxAhead: number;
  /**
   * Most spilled keys whose versions (no values) a fresh join remembers so its downloads merge
   * without reading storage; past it, merges read storage instead.
   */
  maxKept: number;
}

export const DEFAULT_MITT_BOUNDS: MittBounds = {
  maxOps: 50_000,
  maxBytes: 16 * 1024 * 1024,
  maxAhead: 10_000,
  maxKept: 250_000,
};

/**
 * The catcher's mitt of one bucket subscription: it receives the live op stream from seq
 * `from` on, drops duplicates, tracks the highest contiguous seq (gaps are detected, never
 * skipped) and holds ops in memory while a download is in progress, so downloaded entries can
 * be compared with newer live versions without touching storage.
 *
 * Memory is bounded: when the held ops exceed {@link MittBounds}, the owner calls
 * {@link Mitt.spill} and applies them to storage early. That is safe because LWW merge is
 * order-independent; the mitt keeps tracking seqs, which costs no memory without gaps.
 */
export class Mitt {
  private contiguous: number;
  /** Seqs received beyond a gap. */
  private readonly ahead = new Set<number>();
  private held: SeqOp[] = [];
  private heldBytes = 0;
  /** Newest held version per key, for download merges. */
  private readonly newestByKey = new Map<string, Hlc>();
  /** Ops received in total (for status). */
  received = 0;

  constructor(
    /** First seq of the stream (relay head + 1 at subscription). */
    readonly from: number,
    private readonly bounds: MittBounds = DEFAULT_MITT_BOUNDS,
  ) {
    this.contiguous = from - 1;
  }

  /**
   * Takes one op off the stream. Returns false for a duplicate or an op from before `from`
   * (already covered by the download), true when the op is new.
   */
  add(op: SeqOp, hold: boolean): boolean {
    const seq = op.seq;
    if (seq <= this.contiguous || this.ahead.has(seq)) return false;
    if (seq === this.contiguous + 1) {
      this.contiguous = seq;
      while (this.ahead.delete(this.contiguous + 1)) this.contiguous++;
    } else {
      this.ahead.add(seq);
    }
    this.received++;
    if (hold) {
      this.held.push(op);
      this.heldBytes += opBytes(op);
      const cur = this.newestByKey.get(op.key);
      if (cur === undefined || op.hlc > cur) this.newestByKey.set(op.key, op.hlc);
    }
    return true;
  }

  /**
   * Marks seqs `lo..hi` as received without ops: a frame of a subscription with a spec covers
   * them and left out the ops outside the spec. Returns true when any of them was new.
   */
  cover(lo: number, hi: number): boolean {
    let fresh = false;
    for (let seq = Math.max(lo, this.contiguous + 1); seq <= hi; seq++) {
      if (this.ahead.has(seq)) continue;
      fresh = true;
      if (seq === this.contiguous + 1) {
        this.contiguous = seq;
        while (this.ahead.delete(this.contiguous + 1)) this.contiguous++;
        seq = Math.max(seq, this.contiguous);
      } else this.ahead.add(seq);
    }
    return fresh;
  }

  /** Highest seq up to which every op has been received. */
  get upTo(): number {
    return this.contiguous;
  }

  /** True while some seq below a received one is missing. */
  get hasGap(): boolean {
    return this.ahead.size > 0;
  }

  /** True when the gap tracking itself has outgrown its bound: treat as a lost stream. */
  get gapOverflow(): boolean {
    return this.ahead.size > this.bounds.maxAhead;
  }

  /** Newest held version of `key`, if any. */
  newest(key: string): Hlc | undefined {
    return this.newestByKey.get(key);
  }

  /** The keys of the ops held. */
  heldKeys(): IterableIterator<string> {
    return this.newestByKey.keys();
  }

  get heldCount(): number {
    return this.held.length;
  }

  get bytes(): number {
    return this.heldBytes;
  }

  isOverBound(): boolean {
    return this.held.length > this.bounds.maxOps || this.heldBytes > this.bounds.maxBytes;
  }

  /** Hands over every held op (to be applied to storage) and forgets them. */
  spill(): SeqOp[] {
    const out = this.held;
    this.held = [];
    this.heldBytes = 0;
    this.newestByKey.clear();
    return out;
  }
}

/**
 * The merge rule of a catch-up download: a downloaded entry is applied only when it is newer
 * than both the newest version the mitt holds for its key and what is stored. Held ops are
 * applied after the download (or were spilled into storage), so nothing newer is overwritten.
 */
export function downloadedWins(
  downloaded: Hlc,
  held: Hlc | undefined,
  stored: { hlc: Hlc } | undefined,
): boolean {
  if (held !== undefined && held >= downloaded) return false;
  return wins(downloaded, stored?.hlc);
}
