import { Packr } from 'msgpackr';
import type { Value } from './model';

/**
 * The one MessagePack configuration of Mittsync, for values and for frames: plain maps (no
 * records: their structures live across frames, see `codec.ts`), maps decoded as plain objects,
 * no extension types (a value is JSON). A value is the same bytes on the wire, in the relay's
 * SQLite and in the browser's IndexedDB pages, so stores pass values along as bytes without
 * decoding them: every encoder and decoder of values or frames goes through this instance.
 */
export const msgpack = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

/**
 * `v` as MessagePack, in bytes of its own: safe to keep, store or transfer.
 *
 * @example
 * ```ts
 * const bytes = encodeValue({ title: 'milk' });
 * decodeValue(bytes); // { title: 'milk' }
 * ```
 */
export function encodeValue(v: Value): Uint8Array {
  return new Uint8Array(msgpack.pack(v));
}

/**
 * `v` as MessagePack without a copy: a view into the buffer msgpackr writes every encoding
 * into. Later encodings never write over it, but it keeps that whole shared buffer alive, and a
 * structured clone of it copies the whole buffer (a transfer would detach it from msgpackr). Copy
 * it into a buffer of your own before keeping it (as the column and page writers do, one
 * `set` per value), or hand it to something that copies it (an SQLite bind); else use
 * {@link encodeValue}.
 */
export function encodeValueView(v: Value): Uint8Array {
  return msgpack.pack(v);
}

/** The value `bytes` encode (one MessagePack value, as {@link encodeValue} writes it). */
export function decodeValue(bytes: Uint8Array): Value {
  return msgpack.unpack(bytes) as Value;
}
