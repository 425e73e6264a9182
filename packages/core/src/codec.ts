import { Packr } from 'msgpackr';
import { MittsyncError } from './errors';

/**
 * The wire codec: MessagePack (msgpackr) with records, so the field names of repeated
 * structures (ops, entries) are written once per frame instead of once per op. Each frame is
 * self-contained (`sequential`), so frames can be decoded independently, in any order.
 * JSON is available as a debug format.
 */
const packr = new Packr({ useRecords: true, sequential: true, mapsAsObjects: true, moreTypes: false });

export type WireFormat = 'msgpack' | 'json';

/** Encodes a message into one frame. */
export function encodeFrame(msg: unknown, format: WireFormat = 'msgpack'): Uint8Array {
  if (format === 'json') return new TextEncoder().encode(JSON.stringify(msg));
  return packr.pack(msg);
}

/**
 * Decodes one frame; anything that is not a well-formed frame becomes `BAD_FRAME` (the caller
 * still validates the message's shape).
 */
export function decodeFrame(bytes: Uint8Array, format: WireFormat = 'msgpack'): unknown {
  try {
    if (format === 'json') return JSON.parse(new TextDecoder().decode(bytes));
    return packr.unpack(bytes);
  } catch (cause) {
    throw new MittsyncError('BAD_FRAME', 'frame could not be decoded', { cause });
  }
}
