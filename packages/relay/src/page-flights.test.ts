import { MittsyncError } from '@mittsync/core';
import { describe, expect, it } from 'vitest';
import { PAGE_CHUNK_BYTES, PageFlights } from './page-flights';

async function drain(stream: ReadableStream<Uint8Array>): Promise<number> {
  let n = 0;
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return n;
    expect(value.byteLength).toBeLessThanOrEqual(PAGE_CHUNK_BYTES);
    n += value.byteLength;
  }
}

function refusal(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e instanceof MittsyncError ? [e.code, e.detail?.retryAfterS] : e;
  }
  return 'admitted';
}

describe('PageFlights', () => {
  it('refuses a principal past its cap with RATE_LIMITED and a retry delay, others still admitted', () => {
    const f = new PageFlights(10, 2);
    f.acquire('a');
    f.acquire('a');
    expect(refusal(() => f.acquire('a'))).toEqual(['RATE_LIMITED', 1]);
    expect(refusal(() => f.acquire('b'))).toBe('admitted');
    expect(f.count).toBe(3);
  });

  it('refuses everyone past the relay-wide cap until a page is released', () => {
    const f = new PageFlights(2, 2);
    const first = f.acquire('a');
    f.acquire('b');
    expect(refusal(() => f.acquire('c'))).toEqual(['RATE_LIMITED', 1]);
    first.release();
    first.release();
    expect(refusal(() => f.acquire('c'))).toBe('admitted');
    expect(f.count).toBe(2);
  });

  it('streams a body in chunks, counting unsent bytes, and frees the slot when it ends', async () => {
    const f = new PageFlights(1, 1);
    const body = f.acquire('a').body(new Uint8Array(5 * PAGE_CHUNK_BYTES + 10));
    expect([f.count, f.bytes]).toEqual([1, 5 * PAGE_CHUNK_BYTES + 10]);
    expect(await drain(body)).toBe(5 * PAGE_CHUNK_BYTES + 10);
    expect([f.count, f.bytes, f.peakBytes]).toEqual([0, 0, 5 * PAGE_CHUNK_BYTES + 10]);
  });

  it('frees the slot and its bytes when the body is cancelled (the client went away)', async () => {
    const f = new PageFlights(1, 1);
    const reader = f
      .acquire('a')
      .body(new Uint8Array(3 * PAGE_CHUNK_BYTES))
      .getReader();
    await reader.read();
    expect(f.bytes).toBe(2 * PAGE_CHUNK_BYTES);
    await reader.cancel();
    expect([f.count, f.bytes]).toEqual([0, 0]);
  });
});
