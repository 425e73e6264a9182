import {
  decodeFrame,
  type Entry,
  encodeFrame,
  encodeValue,
  type Op,
  packOps,
  pageByColumns,
  type SeqOp,
  type ServerMessage,
} from '@mittsync/core';
import { encodeHlc } from '@mittsync/core/model';
import type { Metric } from '../metric';

/**
 * Bytes on the wire per op beyond its key and value, in real frames as `encodeFrame` writes
 * them (MessagePack, as the relay and replicas send over binary sockets): what the protocol
 * costs on top of the payload. Live ops go packed (`op-pack.ts`) between a relay and a client
 * that negotiated it (every current one, over binary sockets); the `_tuples_` figures are what
 * a client that did not (an older one) gets. Deterministic: the figures change only with the
 * format.
 */

const utf8 = new TextEncoder();
/** Replica ids as replicas make them (randomId: 16 characters). */
const origins = ['Vb3kQ9xL2mTz7RwA', 'p0Yh5sNc8EuJ1dGf', 'K4tWq6ZrXa9LbM2e', 'hS7nD3vF0jQ5yPcU'];
const wall = Date.UTC(2026, 11, 6, 12, 0, 0);

/** A catalogue row of about 100 bytes as MessagePack. */
function value(i: number) {
  return {
    name: `Widget ${i}`,
    price: 1299 + (i % 500),
    qty: i % 37,
    color: ['red', 'green', 'blue'][i % 3] as string,
    tags: ['hardware', 'sale'],
    updatedBy: 'warehouse-3',
  };
}

const key = (i: number) => `sku-${String(i).padStart(6, '0')}`;

/** Payload bytes of `items`: each key's UTF-8 plus its value's MessagePack. */
const payload = (items: { key: string; value?: unknown }[]) =>
  items.reduce((s, x) => s + utf8.encode(x.key).byteLength + encodeValue(x.value as never).byteLength, 0);

/**
 * 500 live ops as the relay delivers them: 4 origins, consecutive originSeqs and seqs, HLCs
 * 1 ms apart, each an update of an existing key (`prev` holds that key's previous version).
 */
function liveOps(): SeqOp[] {
  return Array.from({ length: 500 }, (_, i) => {
    const origin = origins[i % 4] as string;
    const k = (i * 7919) % 100_000;
    return {
      origin,
      originSeq: 40_000 + Math.floor(i / 4),
      key: key(k),
      kind: 'set',
      value: value(k),
      hlc: encodeHlc(wall + i, i % 3, origin),
      seq: 1_200_000 + i,
      prev: { hlc: encodeHlc(wall - 86_400_000 + k, 0, origins[(i + 1) % 4] as string) },
    };
  });
}

/** 4,000 entries of a catch-up page: consecutive keys, seqs and HLCs spread over a day. */
function pageEntries(): Entry[] {
  return Array.from({ length: 4000 }, (_, i) => ({
    key: key(20_000 + i),
    hlc: encodeHlc(wall - ((i * 21_601) % 86_400_000), i % 2, origins[i % 4] as string),
    seq: 1 + ((i * 2_654_435) % 1_200_000),
    value: value(20_000 + i),
  }));
}

/** The frame must decode to its ops, and hold them packed when asked (no fallback to tuples). */
function checked(frame: Uint8Array, ops: readonly SeqOp[] | readonly Op[], packed: boolean): Uint8Array {
  const back = decodeFrame(frame) as { ops: unknown[] };
  if (back.ops.length !== ops.length) throw new Error('frame does not decode to its ops');
  if (packed && packOps(ops, 'seq' in (ops[0] as object)) === undefined) throw new Error('ops not packed');
  return frame;
}

function deliverOverhead(packed: boolean): number {
  const ops = liveOps();
  const msg = {
    type: 'deliver',
    bucket: 'catalog',
    ops,
    sum: { count: 100_000, a: 2_912_837_465, b: 1_029_384_756 },
  };
  const bytes = checked(encodeFrame(msg, 'msgpack', { packOps: packed }), ops, packed).byteLength;
  return (bytes - payload(ops)) / ops.length;
}

function pushOverhead(packed: boolean): number {
  const ops = liveOps().map(({ seq: _s, prev: _p, ...op }) => op);
  const frame = encodeFrame({ type: 'push', bucket: 'catalog', ops }, 'msgpack', { packOps: packed });
  const bytes = checked(frame, ops, packed).byteLength;
  return (bytes - payload(ops)) / ops.length;
}

function pageOverhead(byColumns: boolean): number {
  const entries = pageEntries();
  const page: ServerMessage = {
    type: 'page',
    bucket: 'catalog',
    reqId: 3,
    entries,
    next: key(24_000),
    head: 1_200_000,
  };
  const msg = byColumns ? pageByColumns(page) : page;
  if (byColumns && (msg as { cols?: unknown }).cols === undefined) throw new Error('page not by columns');
  return (encodeFrame(msg).byteLength - payload(entries)) / entries.length;
}

export const wireMetrics: Metric[] = [
  {
    name: 'wire_overhead_bytes_per_op',
    unit: 'B/op',
    description:
      "Bytes per live op beyond its key's UTF-8 and its value's MessagePack in an encodeFrame'd `deliver` frame of 500 ops with packed ops, as the relay sends them to a client that offered `hello.packOps` (keys `sku-000123`, ~100-byte values, HLCs and origins of 16-character replica ids, seqs, `prev` versions a day old as the relay sends for updates).",
    target: { value: 12, better: 'lower' },
    run: async () => deliverOverhead(true),
  },
  {
    name: 'wire_overhead_tuples_bytes_per_op',
    unit: 'B/op',
    description:
      'The same as wire_overhead_bytes_per_op for the same 500 ops as tuples, as the relay sends them to a client that did not offer packed ops.',
    run: async () => deliverOverhead(false),
  },
  {
    name: 'wire_overhead_push_bytes_per_op',
    unit: 'B/op',
    description:
      'The same as wire_overhead_bytes_per_op for the same 500 ops in a packed `push` frame (client to relay, after a welcome with `packOps`: no seq, no prev).',
    run: async () => pushOverhead(true),
  },
  {
    name: 'wire_overhead_push_tuples_bytes_per_op',
    unit: 'B/op',
    description:
      'The same push as wire_overhead_push_bytes_per_op as tuples, as a client sends it to a relay that does not read packed ops.',
    run: async () => pushOverhead(false),
  },
  {
    name: 'wire_overhead_page_bytes_per_entry',
    unit: 'B/entry',
    description:
      "Bytes per entry beyond key and value in an encodeFrame'd catch-up `page` of 4,000 entries by column (`pageByColumns`, as a replica asks for them), same keys, values and HLCs as wire_overhead_bytes_per_op.",
    run: async () => pageOverhead(true),
  },
  {
    name: 'wire_overhead_page_entries_bytes_per_entry',
    unit: 'B/entry',
    description:
      'The same page as wire_overhead_page_bytes_per_entry with plain `entries`, as the relay sends it to a replica that does not ask for columns.',
    run: async () => pageOverhead(false),
  },
];
