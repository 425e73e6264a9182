import { MittsyncError } from '@mittsync/core';
import type { ClientStatus, HostEvent, SlotColumns } from './api';

/**
 * The bytes of one batch of {@link HostEvent}s, worker to tab. A live-query delivery is the
 * page's main-thread work, so its layout is made to be read without parsing: a generic decoder
 * (msgpack) walked ~10 map keys and type tags per delivery, which was a third of the page's
 * script time per 1,000-change batch in a profile. Here the page takes typed-array views of
 * the transferred buffer at offsets the header gives.
 *
 * Layout, in 32-bit words of the machine's byte order (both ends run on the same machine):
 * the event count, then per event its kind and fields:
 * - status: `0, L`, then `L` bytes of JSON (the browser's own parser: a status comes with most
 *   writes, and a generic decoder's cold start cost more than the delivery it came with);
 * - entries: `1` (snapshot) or `2` / `3` (change, local / remote), `w, n, m, K, V`, then
 *   `i` (n words: slot numbers), `o` (n words: value ends), `kl` (m words: new keys' lengths),
 *   then bytes: `x` (n tombstone flags), `k` (K bytes of UTF-8: new keys, joined), `v`
 *   (V bytes: values, each its own msgpack slice).
 *
 * Every section starts on a 4-byte boundary, so word columns are `Uint32Array` views.
 */

const STATUS = 0;
const SNAP = 1;
const LOCAL = 2;
const REMOTE = 3;

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

const pad4 = (n: number) => (n + 3) & ~3;

/** Encodes `events` into a buffer of its own (the caller transfers it). */
export function encodeEvents(events: readonly HostEvent[]): Uint8Array {
  const parts: (Uint8Array | null)[] = [];
  let size = 4;
  for (const ev of events) {
    if (ev.t === 'status') {
      const body = utf8.encode(JSON.stringify(ev.s));
      parts.push(body);
      size += 8 + pad4(body.length);
    } else {
      const keys = ev.b.k.length === 0 ? null : utf8.encode(ev.b.k);
      parts.push(keys);
      const n = ev.b.i.length;
      size += 24 + 8 * n + 4 * ev.b.kl.length;
      size += pad4(n) + pad4(keys?.length ?? 0) + pad4(ev.b.v.length);
    }
  }
  const buf = new ArrayBuffer(size);
  const words = new Uint32Array(buf);
  const bytes = new Uint8Array(buf);
  words[0] = events.length;
  let at = 4;
  events.forEach((ev, e) => {
    const part = parts[e] ?? null;
    if (ev.t === 'status') {
      const body = part as Uint8Array;
      words[at / 4] = STATUS;
      words[at / 4 + 1] = body.length;
      bytes.set(body, at + 8);
      at += 8 + pad4(body.length);
      return;
    }
    const { i, kl, x, v, o } = ev.b;
    const n = i.length;
    const head = at / 4;
    words[head] = ev.t === 'snap' ? SNAP : ev.s === 'local' ? LOCAL : REMOTE;
    words[head + 1] = ev.w;
    words[head + 2] = n;
    words[head + 3] = kl.length;
    words[head + 4] = part?.length ?? 0;
    words[head + 5] = v.length;
    at += 24;
    words.set(i, at / 4);
    at += 4 * n;
    words.set(o, at / 4);
    at += 4 * n;
    words.set(kl, at / 4);
    at += 4 * kl.length;
    bytes.set(x, at);
    at += pad4(n);
    if (part !== null) bytes.set(part, at);
    at += pad4(part?.length ?? 0);
    bytes.set(v, at);
    at += pad4(v.length);
  });
  return bytes;
}

/**
 * Reads a batch {@link encodeEvents} wrote. Entry columns are views into `bytes` (copied once
 * first if `bytes` does not start on a 4-byte boundary). A batch that does not add up throws
 * `BAD_FRAME`.
 */
export function decodeEvents(bytes: Uint8Array): HostEvent[] {
  const src = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  const { buffer, byteOffset: base, byteLength: end } = src;
  const words = new Uint32Array(buffer, base, end >>> 2);
  const bad = (why: string) => new MittsyncError('BAD_FRAME', `event batch: ${why}`);
  if (words.length === 0) throw bad('empty');
  const count = words[0] as number;
  const out: HostEvent[] = [];
  let at = 4;
  for (let e = 0; e < count; e++) {
    if (at + 8 > end) throw bad('truncated');
    const kind = words[at / 4] as number;
    if (kind === STATUS) {
      const len = words[at / 4 + 1] as number;
      if (at + 8 + len > end) throw bad('truncated status');
      let s: ClientStatus;
      try {
        s = JSON.parse(fromUtf8.decode(src.subarray(at + 8, at + 8 + len))) as ClientStatus;
      } catch {
        throw bad('unreadable status');
      }
      out.push({ t: 'status', s });
      at += 8 + pad4(len);
      continue;
    }
    if (kind > REMOTE || at + 24 > end) throw bad(kind > REMOTE ? `unknown kind ${kind}` : 'truncated');
    const head = at / 4;
    const w = words[head + 1] as number;
    const n = words[head + 2] as number;
    const m = words[head + 3] as number;
    const kBytes = words[head + 4] as number;
    const vBytes = words[head + 5] as number;
    at += 24;
    const next = at + 8 * n + 4 * m + pad4(n) + pad4(kBytes) + pad4(vBytes);
    if (next > end) throw bad('truncated entries');
    const i = new Uint32Array(buffer, base + at, n);
    at += 4 * n;
    const o = new Uint32Array(buffer, base + at, n);
    at += 4 * n;
    const kl = new Uint32Array(buffer, base + at, m);
    at += 4 * m;
    const x = src.subarray(at, at + n);
    at += pad4(n);
    const k = kBytes === 0 ? '' : fromUtf8.decode(src.subarray(at, at + kBytes));
    at += pad4(kBytes);
    const v = src.subarray(at, at + vBytes);
    at = next;
    const b: SlotColumns = { i, k, kl, x, v, o };
    out.push(
      kind === SNAP ? { t: 'snap', w, b } : { t: 'chg', w, b, s: kind === LOCAL ? 'local' : 'remote' },
    );
  }
  return out;
}
