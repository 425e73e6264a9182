import { MittsyncError } from './errors';
import { isUtf8 } from './utf8';

/**
 * msgpackr decodes strings leniently and has no strict mode: its JavaScript decoder writes
 * U+FFFD for a bad lead byte and does not check continuation bytes at all (`C3 41` decodes to
 * `Á`, as `C3 81` does), and native or `TextDecoder` paths substitute U+FFFD. Either way two
 * different byte strings a client sent can become one key. So every frame is walked once
 * before it is decoded: each string's bytes (map keys, keys, bucket names, the strings inside
 * values) must be well-formed UTF-8. The walk only reads headers and string bytes and skips
 * everything else by its length, so it costs a fraction of the decode itself.
 *
 * Extension types are refused too, except msgpackr's `undefined` (`D4 00 00`): msgpackr's
 * extensions (Set, Error, RegExp, bundled strings, records) read strings from the stream after
 * their header or from a string bundle, where a walk by lengths cannot follow, and no frame or
 * value of the protocol holds one (values are JSON).
 *
 * A structure the walk cannot follow (truncated, reserved byte `C1`) is left to msgpackr, which
 * then fails the frame with `BAD_FRAME`.
 */
export function checkFrameStrings(b: Uint8Array): void {
  valueEnd(b, 0, b.length);
}

/**
 * Walks the one MessagePack value at `b[start]`, checking its strings as
 * {@link checkFrameStrings} does, and returns where it ends: how a frame that carries values
 * back to back (packed ops, `op-pack.ts`) finds each one's bytes. Returns -1 when the value
 * does not end by `limit` or has a structure the walk cannot follow (a reserved byte).
 */
export function valueEnd(b: Uint8Array, start: number, limit: number): number {
  const n = limit;
  let pos = start;
  let pending = 1; // values still to walk (containers add their elements)
  while (pending > 0) {
    if (pos >= n) return -1;
    pending--;
    const t = b[pos++] as number;
    let skip = 0; // bytes of payload to jump over
    let str = -1; // byte length of a string payload
    if (t < 0x80 || t >= 0xe0) continue; // fixints
    if (t <= 0x8f) pending += 2 * (t - 0x80);
    else if (t <= 0x9f) pending += t - 0x90;
    else if (t <= 0xbf) str = t - 0xa0;
    else
      switch (t) {
        case 0xc1: // reserved: msgpackr refuses it
          return -1;
        case 0xc0:
        case 0xc2:
        case 0xc3:
          break;
        case 0xc4: // bin 8/16/32
          skip = 1 + (b[pos] ?? 0);
          break;
        case 0xc5:
          skip = 2 + readU16(b, pos);
          break;
        case 0xc6:
          skip = 4 + readU32(b, pos);
          break;
        case 0xcc:
        case 0xd0:
          skip = 1;
          break;
        case 0xcd:
        case 0xd1:
          skip = 2;
          break;
        case 0xca:
        case 0xce:
        case 0xd2:
          skip = 4;
          break;
        case 0xcb:
        case 0xcf:
        case 0xd3:
          skip = 8;
          break;
        case 0xd4:
          // msgpackr's undefined (type 0, one filler byte) is the only extension let through.
          if (b[pos] !== 0) refuse('MessagePack extension types are not part of the protocol');
          skip = 2;
          break;
        case 0xd9:
          str = b[pos] ?? 0;
          pos += 1;
          break;
        case 0xda:
          str = readU16(b, pos);
          pos += 2;
          break;
        case 0xdb:
          str = readU32(b, pos);
          pos += 4;
          break;
        case 0xdc:
          pending += readU16(b, pos);
          skip = 2;
          break;
        case 0xdd:
          pending += readU32(b, pos);
          skip = 4;
          break;
        case 0xde:
          pending += 2 * readU16(b, pos);
          skip = 2;
          break;
        case 0xdf:
          pending += 2 * readU32(b, pos);
          skip = 4;
          break;
        default: // ext 8/16/32, fixext 2..16
          refuse('MessagePack extension types are not part of the protocol');
      }
    if (str >= 0) {
      const end = pos + str;
      if (end > n) return -1; // truncated: msgpackr reports it
      if (!isUtf8(b, pos, end)) refuse(`a string at byte ${pos} is not well-formed UTF-8`);
      pos = end;
    } else pos += skip;
  }
  return pos > n ? -1 : pos;
}

function readU16(b: Uint8Array, at: number): number {
  return ((b[at] ?? 0) << 8) | (b[at + 1] ?? 0);
}

function readU32(b: Uint8Array, at: number): number {
  return (((b[at] ?? 0) << 24) | ((b[at + 1] ?? 0) << 16) | ((b[at + 2] ?? 0) << 8) | (b[at + 3] ?? 0)) >>> 0;
}

function refuse(message: string): never {
  throw new MittsyncError('BAD_MESSAGE', message);
}
