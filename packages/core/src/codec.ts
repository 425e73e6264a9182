import { columnsOf, decodeColumns, type EntryColumns, encodeColumns } from './columns';
import { MittsyncError } from './errors';
import { checkFrameStrings } from './frame-strings';
import { type Entry, type Version, versionOf } from './model';
import { PACKED_OPS, packOps, unpackOps } from './op-pack';
import { decodePageFrame, encodePageFrame, packedValueOf } from './packed';
import type { ServerMessage } from './protocol';
import { isUtf8 } from './utf8';
import { msgpack } from './value-codec';

/**
 * The wire codec: MessagePack (msgpackr) in plain, self-contained frames: every frame
 * decodes on its own, whoever sent it and whatever was lost before it. (msgpackr's record
 * extension would shrink frames further, but its structures live across frames, which breaks
 * as soon as one frame is dropped or two senders share a decoder.) The bulk of any frame is
 * its ops or entries, so those travel as positional tuples instead of keyed maps: that is
 * where records would have saved bytes; between peers that negotiated it, the ops of `deliver`
 * and `push` go packed in one binary field instead (`op-pack.ts`: a tenth of the tuples' bytes
 * beyond key and value). JSON is available as a debug format. Frames and the
 * values inside them share one MessagePack configuration (`msgpack`, in `value-codec.ts`).
 */

export type WireFormat = 'msgpack' | 'json';

type Obj = Record<string, unknown>;

// Op: [origin, originSeq, key, kind (0 set, 1 del), hlc, value, seq?, prev?]
// prev: null (absent) or [hlc, 0 live | 1 tombstone]
function opToTuple(o: Obj): unknown[] {
  const t = [
    o.origin,
    o.originSeq,
    o.key,
    o.kind === 'del' ? 1 : 0,
    o.hlc,
    o.kind === 'del' ? null : o.value,
  ];
  if (o.seq !== undefined) t.push(o.seq);
  const prev = o.prev as Version | null | undefined;
  if (o.seq !== undefined && prev !== undefined)
    t.push(prev === null ? null : [prev.hlc, prev.deleted ? 1 : 0]);
  return t;
}

function tupleToOp(t: unknown): unknown {
  if (!Array.isArray(t)) return t; // left for the validator to reject
  const o: Obj = {
    origin: t[0],
    originSeq: t[1],
    key: t[2],
    kind: t[3] === 1 ? 'del' : t[3] === 0 ? 'set' : t[3],
    hlc: t[4],
  };
  if (t[3] !== 1) o.value = t[5];
  if (t.length > 6) o.seq = t[6];
  if (t.length > 7) {
    const p = t[7];
    // Anything else is left for the validator to reject.
    o.prev = Array.isArray(p) && p.length === 2 ? versionOf({ hlc: p[0], deleted: p[1] === 1 }) : p;
  }
  return o;
}

// Entry: [key, hlc, seq, deleted (0/1), value]
function entryToTuple(e: Obj): unknown[] {
  return e.deleted ? [e.key, e.hlc, e.seq, 1] : [e.key, e.hlc, e.seq, 0, e.value];
}

function tupleToEntry(t: unknown): unknown {
  if (!Array.isArray(t)) return t;
  return t[3] === 1
    ? { key: t[0], hlc: t[1], seq: t[2], deleted: true }
    : { key: t[0], hlc: t[1], seq: t[2], value: t[4] };
}

function compact(msg: unknown, packed: boolean): unknown {
  const m = msg as Obj;
  if ((m.type === 'deliver' || m.type === 'push') && Array.isArray(m.ops)) {
    const bin = packed ? packOps(m.ops, m.type === 'deliver') : undefined;
    return { ...m, ops: bin ?? m.ops.map(opToTuple) };
  }
  if (m.type === 'page' && Array.isArray(m.entries)) return { ...m, entries: m.entries.map(entryToTuple) };
  return msg;
}

function expand(msg: unknown): unknown {
  if (typeof msg !== 'object' || msg === null) return msg;
  const m = msg as Obj;
  if (m.type === 'deliver' || m.type === 'push') {
    if (Array.isArray(m.ops)) m.ops = m.ops.map(tupleToOp);
    else if (m.ops instanceof Uint8Array) m.ops = unpackOps(m.ops, m.type === 'deliver');
  } else if (m.type === 'page' && Array.isArray(m.entries)) {
    m.entries = m.entries.map(tupleToEntry);
    if (m.cols instanceof Uint8Array) m.cols = decodeColumns(m.cols);
  }
  return m;
}

const isMapHeader = (b: number | undefined) => b !== undefined && b >= 0x80 && b <= 0x8f;

/** How {@link encodeFrame} may write a frame, beyond its format. */
export interface EncodeOptions {
  /**
   * Pack the ops of `deliver` and `push` frames (`op-pack.ts`) when the format is msgpack:
   * only for a peer that said it reads them (`hello.packOps` / `welcome.packOps`).
   */
  packOps?: boolean;
}

export { PACKED_OPS };

/** Encodes a message into one frame. */
export function encodeFrame(
  msg: unknown,
  format: WireFormat = 'msgpack',
  opts: EncodeOptions = {},
): Uint8Array {
  const m = msg as Obj;
  if (m.type === 'page' && m.cols !== undefined) {
    // Columns travel as one binary field (see `encodeColumns`): there is no JSON form.
    if (format !== 'msgpack')
      throw new MittsyncError('BAD_MESSAGE', 'column pages need the binary wire format');
    return msgpack.pack({ ...m, cols: encodeColumns(m.cols as EntryColumns) });
  }
  if (format === 'msgpack' && m.type === 'page' && Array.isArray(m.entries)) {
    const entries = m.entries as Entry[];
    // Entries straight from a store that keeps values packed: copy the values, don't re-encode.
    if (
      entries.length > 0 &&
      entries.every(
        (e) => typeof e === 'object' && e !== null && (e.deleted || packedValueOf(e) !== undefined),
      )
    )
      return encodePageFrame({ ...m, entries: null }, entries);
  }
  const wire = compact(msg, format === 'msgpack' && opts.packOps === true);
  if (format === 'json') return new TextEncoder().encode(JSON.stringify(wire));
  return msgpack.pack(wire);
}

/**
 * Decodes one frame; anything that is not a well-formed frame becomes `BAD_FRAME` (the caller
 * still validates the message's shape). A string anywhere in it that is not well-formed UTF-8
 * is `BAD_MESSAGE`, as a lone surrogate is: decoding would replace its bytes and could make it
 * equal to another string (see `frame-strings.ts`).
 */
export function decodeFrame(bytes: Uint8Array, format: WireFormat = 'msgpack'): unknown {
  if (format === 'msgpack') checkFrameStrings(bytes);
  else if (!isUtf8(bytes, 0, bytes.length))
    throw new MittsyncError('BAD_MESSAGE', 'a JSON frame must be well-formed UTF-8');
  let raw: unknown;
  try {
    // Page frames (the bulk of a catch-up) keep their values packed until something reads them.
    if (format === 'msgpack' && isMapHeader(bytes[0])) {
      const page = decodePageFrame(bytes);
      if (page !== undefined) return page;
    }
    raw = format === 'json' ? JSON.parse(new TextDecoder().decode(bytes)) : msgpack.unpack(bytes);
  } catch (cause) {
    throw new MittsyncError('BAD_FRAME', 'frame could not be decoded', { cause });
  }
  return expand(raw);
}

/**
 * `page` by column, as a relay answers a `pageReq` that asks for columns; `page` as it is when
 * it is no page (a reset), holds nothing, or has a key with no UTF-8 form (see {@link columnsOf}).
 */
export function pageByColumns(page: ServerMessage): ServerMessage {
  if (page.type !== 'page' || page.entries.length === 0) return page;
  try {
    return { ...page, entries: [], cols: columnsOf(page.entries) };
  } catch {
    return page;
  }
}
