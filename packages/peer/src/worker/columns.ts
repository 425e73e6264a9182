/**
 * The Uint32 columns of a live-query delivery (slot numbers, value ends; see `EntryColumns`),
 * as little-endian bytes: the worker writes them with {@link u32Bytes}, the page reads them in
 * place with {@link u32At}.
 */

/** `values` as little-endian Uint32 bytes. */
export function u32Bytes(values: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  for (let j = 0; j < values.length; j++) {
    const v = values[j] as number;
    const at = j * 4;
    out[at] = v & 0xff;
    out[at + 1] = (v >>> 8) & 0xff;
    out[at + 2] = (v >>> 16) & 0xff;
    out[at + 3] = v >>> 24;
  }
  return out;
}

/**
 * Element `j` of a column {@link u32Bytes} wrote, read from bytes at any offset: a typed-array
 * view needs 4-byte alignment, and copying to get it allocates, which costs more than this on
 * a busy main thread.
 */
export function u32At(b: Uint8Array, j: number): number {
  const at = j * 4;
  return (
    ((b[at] as number) | ((b[at + 1] as number) << 8) | ((b[at + 2] as number) << 16)) +
    (b[at + 3] as number) * 0x1000000
  );
}
