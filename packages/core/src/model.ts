import type { Hlc } from './hlc';

/** A JSON-compatible value stored under a key. */
export type Value = null | boolean | number | string | Value[] | { [k: string]: Value };

/**
 * One write of one replica to one key. `originSeq` counts the origin's ops in this bucket
 * (1, 2, 3, ...): it is the transmission counter that makes pushes idempotent.
 */
export interface Op {
  /** replicaId of the writer. */
  origin: string;
  /** 1-based position of this op among the origin's ops in this bucket. */
  originSeq: number;
  key: string;
  kind: 'set' | 'del';
  /** Present when `kind === 'set'`. */
  value?: Value;
  /** Version of the write; LWW compares these. */
  hlc: Hlc;
}

/** A key's version: its HLC and whether it is a tombstone. */
export interface Version {
  hlc: Hlc;
  deleted?: boolean;
}

/** An op the relay accepted, with its position in the bucket's log. */
export interface SeqOp extends Op {
  /** The bucket log position assigned by the relay (1-based, contiguous). */
  seq: number;
  /**
   * On delivered ops: the key's state on the relay just before this op (`null`: absent). A
   * joining replica uses it to apply the live ops it held without reading its own storage
   * (see fresh-join.ts). Absent when the relay did not say.
   */
  prev?: Version | null;
}

/** The state of one key: a value or a tombstone, with its version. */
export interface Entry {
  key: string;
  hlc: Hlc;
  /** Relay log position of the write that produced this state (0 for local, unconfirmed). */
  seq: number;
  /** True for a tombstone; `value` is then absent. */
  deleted?: boolean;
  value?: Value;
}

/** Orders anything with a key by key, as the replica and its stores sort entries. */
export const keyOrder = (a: { key: string }, b: { key: string }): number =>
  a.key < b.key ? -1 : a.key > b.key ? 1 : 0;

/** The version of an entry (or of the state an op leaves behind). */
export function versionOf(e: { hlc: Hlc; deleted?: boolean | undefined }): Version {
  return e.deleted ? { hlc: e.hlc, deleted: true } : { hlc: e.hlc };
}

/** The LWW rule: an incoming version wins only when strictly newer. */
export function wins(incoming: Hlc, current: Hlc | undefined): boolean {
  return current === undefined || incoming > current;
}

/** Turns an op into the entry it produces. */
export function opToEntry(op: Op, seq: number): Entry {
  return op.kind === 'del'
    ? { key: op.key, hlc: op.hlc, seq, deleted: true }
    : { key: op.key, hlc: op.hlc, seq, value: op.value as Value };
}

/**
 * LWW merge of two entries for the same key: the one with the greater HLC. A join
 * semilattice: commutative, associative and idempotent (tested by property tests).
 * Concurrent set and delete resolve like any other pair: the greater HLC wins, and equal
 * HLCs can only come from the same op.
 */
export function mergeEntry(a: Entry | undefined, b: Entry | undefined): Entry | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  if (b.hlc > a.hlc) return b;
  if (a.hlc > b.hlc) return a;
  // Same version, same write: keep the one that knows its log position.
  return b.seq > a.seq ? b : a;
}

/** Rough byte size of a value as encoded, for limits and mitt accounting. */
export function approxBytes(v: unknown): number {
  switch (typeof v) {
    case 'string':
      return v.length + 2;
    case 'number':
      return 9;
    case 'boolean':
      return 1;
    case 'undefined':
      return 1;
    case 'object': {
      if (v === null) return 1;
      let n = 2;
      if (Array.isArray(v)) for (const x of v) n += approxBytes(x);
      else for (const k in v) n += k.length + 2 + approxBytes((v as Record<string, unknown>)[k]);
      return n;
    }
    default:
      return 16;
  }
}

/** Approximate size of an op on the wire and in memory. */
export function opBytes(op: Op): number {
  return 40 + op.key.length + op.hlc.length + (op.kind === 'set' ? approxBytes(op.value) : 0);
}
