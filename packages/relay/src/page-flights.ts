import { MittsyncError } from '@mittsync/core';

/** Bytes handed to the runtime per read of a page body: what its socket buffers at a time. */
export const PAGE_CHUNK_BYTES = 64 * 1024;

/** Seconds a client refused for too many pages in flight is told to wait (`Retry-After`). */
export const PAGE_RETRY_AFTER_S = 1;

/** One page response in flight: held from admission until its body is sent or abandoned. */
export interface PageFlight {
  /** Streams `bytes` in {@link PAGE_CHUNK_BYTES} chunks, pulled as the runtime drains them. */
  body(bytes: Uint8Array): ReadableStream<Uint8Array>;
  /** Frees the slot (idempotent); `body` calls it when the stream ends or is cancelled. */
  release(): void;
}

/**
 * Page responses in flight, per principal and for the whole relay. A client that requests pages
 * and never reads them holds its slots until its socket is cut; past the caps new page requests
 * are refused with `RATE_LIMITED` and `Retry-After` instead of piling encoded pages up in memory.
 * Shared code: every runtime serves pages through it.
 */
export class PageFlights {
  private total = 0;
  private readonly perPrincipal = new Map<string, number>();
  /** Encoded page bytes not yet handed to the runtime's socket. */
  bytes = 0;
  /** The most {@link bytes} ever held at once. */
  peakBytes = 0;

  constructor(
    private readonly maxTotal: number,
    private readonly maxPerPrincipal: number,
  ) {}

  /** Page responses in flight now. */
  get count(): number {
    return this.total;
  }

  /** Admits one page response for `principal`, or throws `RATE_LIMITED` past a cap. */
  acquire(principal: string): PageFlight {
    const mine = this.perPrincipal.get(principal) ?? 0;
    if (mine >= this.maxPerPrincipal) {
      throw refusal(`${mine} pages in flight for this token (max ${this.maxPerPrincipal}): read them first`);
    }
    if (this.total >= this.maxTotal) {
      throw refusal(`the relay has ${this.total} pages in flight (max ${this.maxTotal})`);
    }
    this.total++;
    this.perPrincipal.set(principal, mine + 1);
    let held = 0;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.bytes -= held;
      held = 0;
      this.total--;
      const n = (this.perPrincipal.get(principal) ?? 1) - 1;
      if (n <= 0) this.perPrincipal.delete(principal);
      else this.perPrincipal.set(principal, n);
    };
    const body = (bytes: Uint8Array): ReadableStream<Uint8Array> => {
      held = bytes.byteLength;
      this.bytes += held;
      if (this.bytes > this.peakBytes) this.peakBytes = this.bytes;
      let at = 0;
      return new ReadableStream<Uint8Array>(
        {
          // Pulled only when the runtime wants more (on Node: after the socket drained), so an
          // unread response holds one page's bytes, never a growing copy of them.
          pull: (controller) => {
            const end = Math.min(at + PAGE_CHUNK_BYTES, bytes.byteLength);
            // A copy: a view would keep the whole page alive in the socket's buffer after release.
            controller.enqueue(bytes.slice(at, end));
            this.bytes -= end - at;
            held -= end - at;
            at = end;
            if (at >= bytes.byteLength) {
              controller.close();
              release();
            }
          },
          cancel: release,
        },
        { highWaterMark: 0 },
      );
    };
    return { body, release };
  }
}

function refusal(why: string): MittsyncError {
  return new MittsyncError(
    'RATE_LIMITED',
    `too many pages in flight: ${why}; retry in ${PAGE_RETRY_AFTER_S} s`,
    {
      detail: { retryAfterS: PAGE_RETRY_AFTER_S },
    },
  );
}
