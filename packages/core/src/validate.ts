import { isErrorCode, MittsyncError } from './errors';
import { isHlc, isReplicaId } from './hlc';
import type { Entry, Op, SeqOp, Value } from './model';
import {
  type ClientMessage,
  type ServerMessage,
  SUBSCRIPTION_POLICIES,
  type SubMsg,
  type SubscriptionPolicy,
  type WireLimits,
} from './protocol';
import { validateSpec } from './spec';
import { utf8Length } from './utf8';

/** Default limits; the relay may configure its own and announces them in `welcome`. */
export const DEFAULT_LIMITS: WireLimits = {
  maxFrameBytes: 1024 * 1024,
  maxOpsPerFrame: 2000,
  maxKeyBytes: 512,
  maxValueBytes: 64 * 1024,
  maxDriftMs: 60_000,
  maxBucketsPerSocket: 64,
};

const BUCKET_RE = /^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$/;
const MAX_VALUE_DEPTH = 32;
/** Longest bearer token accepted (the relay's verifier refuses longer ones too). */
const MAX_TOKEN_CHARS = 8192;

function bad(message: string): never {
  throw new MittsyncError('BAD_MESSAGE', message);
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function isCount(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

/**
 * True for a usable bucket name: 1-128 chars of `[A-Za-z0-9_.:/-]`, starting with a letter
 * or digit and never containing `..` (names may end up in file paths and URLs).
 */
export function isBucketName(x: unknown): x is string {
  return typeof x === 'string' && BUCKET_RE.test(x) && !x.includes('..');
}

/**
 * Measures a JSON value's size in bytes (close to its encoded size), rejecting anything that
 * is not JSON (functions, undefined inside arrays, non-finite numbers), has a `__proto__` key,
 * or is nested too deep.
 */
export function measureValue(v: unknown, depth = 0): number {
  if (depth > MAX_VALUE_DEPTH) bad(`value nested deeper than ${MAX_VALUE_DEPTH}`);
  switch (typeof v) {
    case 'string':
      return utf8Length(v) + 5;
    case 'number':
      if (!Number.isFinite(v)) bad('value contains a non-finite number');
      return 9;
    case 'boolean':
      return 1;
    case 'object': {
      if (v === null) return 1;
      let n = 5;
      if (Array.isArray(v)) {
        for (const x of v) n += measureValue(x, depth + 1);
        return n;
      }
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) bad('value contains a non-plain object');
      // MessagePack decoders (and plain assignment) treat this key as the prototype: it would
      // be dropped or worse on the way, so it is refused instead.
      if (Object.hasOwn(v, '__proto__')) bad('value contains a "__proto__" key');
      for (const k in v) n += utf8Length(k) + 5 + measureValue((v as Record<string, unknown>)[k], depth + 1);
      return n;
    }
    default:
      return bad(`value contains a ${typeof v}`);
  }
}

/** A UTF-16 surrogate without its other half. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function checkKey(key: unknown, limits: WireLimits): asserts key is string {
  if (typeof key !== 'string' || key.length === 0) bad('key must be a non-empty string');
  // Such a key has no UTF-8 form: the wire would turn it into another key.
  if (LONE_SURROGATE.test(key)) bad('key must be well-formed Unicode (a lone surrogate)');
  if (key.length > limits.maxKeyBytes || utf8Length(key) > limits.maxKeyBytes) {
    throw new MittsyncError('KEY_TOO_LARGE', `key is longer than ${limits.maxKeyBytes} bytes`, {
      detail: { limit: limits.maxKeyBytes },
    });
  }
}

/** Validates one op (shape, key, value size, HLC form). Drift is the host's business. */
export function validateOp(x: unknown, limits: WireLimits): Op {
  if (!isObject(x)) bad('op must be an object');
  const { origin, originSeq, key, kind, value, hlc } = x;
  if (!isReplicaId(origin)) bad('op.origin must be a replicaId');
  if (!isCount(originSeq) || originSeq < 1) bad('op.originSeq must be a positive integer');
  checkKey(key, limits);
  if (!isHlc(hlc))
    throw new MittsyncError('BAD_HLC', `op.hlc is malformed: ${JSON.stringify(hlc)?.slice(0, 80)}`);
  if (kind === 'set') {
    if (value === undefined) bad('a set op needs a value');
    const size = measureValue(value);
    if (size > limits.maxValueBytes) {
      throw new MittsyncError('VALUE_TOO_LARGE', `value of ${size} bytes exceeds ${limits.maxValueBytes}`, {
        detail: { limit: limits.maxValueBytes, size },
      });
    }
    return { origin, originSeq, key, kind, value: value as Value, hlc };
  }
  if (kind === 'del') return { origin, originSeq, key, kind, hlc };
  return bad('op.kind must be "set" or "del"');
}

function checkBucket(x: unknown): asserts x is string {
  if (!isBucketName(x))
    bad('bucket must be 1-128 chars of [A-Za-z0-9_.:/-], starting with a letter or digit, without ".."');
}

/** Validates a frame from a replica. Throws a typed MittsyncError on anything malformed. */
export function validateClientMessage(x: unknown, limits: WireLimits = DEFAULT_LIMITS): ClientMessage {
  if (!isObject(x)) bad('message must be an object');
  switch (x.type) {
    case 'hello':
      if (!isCount(x.v)) bad('hello.v must be a protocol version');
      if (!isReplicaId(x.replicaId)) bad('hello.replicaId must be 1-64 chars of [A-Za-z0-9_-]');
      // An unknown packOps layout is no error: the relay just does not pack for this client.
      if (isCount(x.packOps)) return { type: 'hello', v: x.v, replicaId: x.replicaId, packOps: x.packOps };
      return { type: 'hello', v: x.v, replicaId: x.replicaId };
    case 'auth':
      if (typeof x.token !== 'string' || x.token.length === 0 || x.token.length > MAX_TOKEN_CHARS)
        bad(`auth.token must be a string of 1-${MAX_TOKEN_CHARS} chars`);
      return { type: 'auth', token: x.token };
    case 'sub': {
      checkBucket(x.bucket);
      if (!isCount(x.since)) bad('sub.since must be a non-negative integer');
      if (x.epoch !== undefined && (typeof x.epoch !== 'string' || x.epoch.length > 64))
        bad('sub.epoch must be a string');
      if (typeof x.flush !== 'boolean') bad('sub.flush must be a boolean');
      if (!isCount(x.subId)) bad('sub.subId must be a non-negative integer');
      if (x.policy !== undefined && !SUBSCRIPTION_POLICIES.includes(x.policy as SubscriptionPolicy))
        bad(`sub.policy must be one of ${SUBSCRIPTION_POLICIES.join(', ')}`);
      const m: SubMsg = {
        type: 'sub',
        bucket: x.bucket,
        since: x.since,
        flush: x.flush,
        subId: x.subId,
      };
      if (x.epoch !== undefined) m.epoch = x.epoch as string;
      if (x.policy !== undefined) m.policy = x.policy as SubscriptionPolicy;
      if (x.spec !== undefined) m.spec = validateSpec(x.spec, limits.maxKeyBytes);
      return m;
    }
    case 'unsub':
      checkBucket(x.bucket);
      return { type: 'unsub', bucket: x.bucket };
    case 'push': {
      checkBucket(x.bucket);
      if (!Array.isArray(x.ops) || x.ops.length === 0) bad('push.ops must be a non-empty array');
      if (x.ops.length > limits.maxOpsPerFrame) {
        throw new MittsyncError(
          'TOO_MANY_OPS',
          `${x.ops.length} ops in one frame exceeds ${limits.maxOpsPerFrame}`,
          {
            detail: { limit: limits.maxOpsPerFrame },
          },
        );
      }
      return { type: 'push', bucket: x.bucket, ops: x.ops.map((o) => validateOp(o, limits)) };
    }
    case 'pageReq': {
      checkBucket(x.bucket);
      if (!isCount(x.reqId)) bad('pageReq.reqId must be a non-negative integer');
      if (!isCount(x.since)) bad('pageReq.since must be a non-negative integer');
      if (!isCount(x.limit) || x.limit < 1) bad('pageReq.limit must be a positive integer');
      if (x.after !== undefined) checkKey(x.after, limits);
      if (x.until !== undefined) checkKey(x.until, limits);
      const m: ClientMessage = {
        type: 'pageReq',
        bucket: x.bucket,
        reqId: x.reqId,
        since: x.since,
        limit: x.limit,
      };
      if (x.after !== undefined) m.after = x.after as string;
      if (x.cols === true) m.cols = true;
      if (x.until !== undefined) m.until = x.until as string;
      if (x.spec !== undefined) m.spec = validateSpec(x.spec, limits.maxKeyBytes);
      return m;
    }
    case 'markerReply':
      checkBucket(x.bucket);
      if (typeof x.flushId !== 'string' || x.flushId.length > 64) bad('markerReply.flushId must be a string');
      if (!isCount(x.sent)) bad('markerReply.sent must be a non-negative integer');
      return { type: 'markerReply', bucket: x.bucket, flushId: x.flushId, sent: x.sent };
    case 'ping':
      if (!isCount(x.id)) bad('ping.id must be a non-negative integer');
      return { type: 'ping', id: x.id };
    case 'recv':
      if (!isCount(x.bytes)) bad('recv.bytes must be a non-negative integer');
      return { type: 'recv', bytes: x.bytes };
    case 'ckpt':
      checkBucket(x.bucket);
      if (!isCount(x.seq)) bad('ckpt.seq must be a non-negative integer');
      return { type: 'ckpt', bucket: x.bucket, seq: x.seq };
    default:
      return bad(`unknown message type ${JSON.stringify(x.type)?.slice(0, 40)}`);
  }
}

/** A list of refused ops (`ack.rejected`, `subscribed.rejected`). */
function checkRejected(x: unknown, what: string): void {
  if (!Array.isArray(x)) bad(`malformed ${what}`);
  for (const r of x) {
    if (!isObject(r) || !isCount(r.originSeq) || !isErrorCode(r.code) || typeof r.message !== 'string')
      bad(`malformed ${what}`);
  }
}

function checkChecksum(x: unknown): void {
  if (!isObject(x) || !isCount(x.count) || !isCount(x.a) || !isCount(x.b)) bad('sum must be a checksum');
}

function checkEntry(x: unknown): asserts x is Entry {
  if (!isObject(x) || typeof x.key !== 'string' || !isHlc(x.hlc) || !isCount(x.seq)) bad('malformed entry');
}

function checkSeqOp(x: unknown): asserts x is SeqOp {
  if (!isObject(x) || !isCount(x.seq) || typeof x.key !== 'string' || !isHlc(x.hlc)) bad('malformed op');
  if (x.kind !== 'set' && x.kind !== 'del') bad('malformed op kind');
  const p = x.prev;
  if (
    p !== undefined &&
    p !== null &&
    (!isObject(p) || !isHlc(p.hlc) || (p.deleted !== undefined && p.deleted !== true))
  )
    bad('malformed op.prev');
}

/**
 * Validates a frame from the relay. Lighter than the client-side checks (the relay is
 * trusted for limits) but a malformed frame still fails loudly instead of corrupting state.
 */
export function validateServerMessage(x: unknown): ServerMessage {
  if (!isObject(x) || typeof x.type !== 'string') bad('message must be an object with a type');
  const m = x as unknown as ServerMessage;
  switch (m.type) {
    case 'welcome':
      if (!isCount(m.v) || !isObject(m.limits)) bad('malformed welcome');
      if (m.socketPerBucket !== undefined && typeof m.socketPerBucket !== 'boolean') bad('malformed welcome');
      if (m.recvEvery !== undefined && (!isCount(m.recvEvery) || m.recvEvery < 1024))
        bad('malformed welcome');
      if (m.packOps !== undefined && !isCount(m.packOps)) bad('malformed welcome');
      return m;
    case 'authed':
      if (!isCount(m.expiresAt)) bad('malformed authed');
      return m;
    case 'subscribed':
      checkBucket(m.bucket);
      if (
        typeof m.epoch !== 'string' ||
        !isCount(m.from) ||
        m.from < 1 ||
        !isCount(m.received) ||
        !isCount(m.subId)
      )
        bad('malformed subscribed');
      checkChecksum(m.sum);
      if (!Array.isArray(m.splits)) bad('malformed subscribed.splits');
      if (m.rejected !== undefined) checkRejected(m.rejected, 'subscribed.rejected');
      if (m.spec !== undefined) m.spec = validateSpec(m.spec, Number.MAX_SAFE_INTEGER);
      return m;
    case 'reset':
      checkBucket(m.bucket);
      if (typeof m.epoch !== 'string' || typeof m.subId !== 'number') bad('malformed reset');
      return m;
    case 'deliver':
      checkBucket(m.bucket);
      if (!Array.isArray(m.ops)) bad('malformed deliver');
      for (const op of m.ops) checkSeqOp(op);
      checkChecksum(m.sum);
      if (
        m.span !== undefined &&
        (!Array.isArray(m.span) ||
          m.span.length !== 2 ||
          !isCount(m.span[0]) ||
          !isCount(m.span[1]) ||
          m.span[0] > m.span[1])
      )
        bad('malformed deliver.span');
      return m;
    case 'page':
      checkBucket(m.bucket);
      if (!isCount(m.reqId) || !Array.isArray(m.entries)) bad('malformed page');
      if (m.next !== null && typeof m.next !== 'string') bad('malformed page.next');
      if (m.head !== undefined && !isCount(m.head)) bad('malformed page.head');
      for (const e of m.entries) checkEntry(e);
      // Columns were checked entry by entry when their frame was decoded (`decodeColumns`).
      if (
        m.cols !== undefined &&
        (!isObject(m.cols) || !(m.cols.keyBytes instanceof Uint8Array) || m.entries.length > 0)
      )
        bad('malformed page.cols');
      return m;
    case 'ack':
      checkBucket(m.bucket);
      if (!isCount(m.upTo) || (m.refusedUpTo !== undefined && !isCount(m.refusedUpTo))) bad('malformed ack');
      if (m.rejected !== undefined) checkRejected(m.rejected, 'ack.rejected');
      return m;
    case 'marker':
      checkBucket(m.bucket);
      if (typeof m.flushId !== 'string') bad('malformed marker');
      return m;
    case 'flushed':
      checkBucket(m.bucket);
      if (
        typeof m.flushId !== 'string' ||
        !isCount(m.seq) ||
        !Array.isArray(m.covered) ||
        !Array.isArray(m.missed)
      )
        bad('malformed flushed');
      return m;
    case 'resync':
      checkBucket(m.bucket);
      return m;
    case 'pong':
      if (!isCount(m.id) || !isObject(m.heads)) bad('malformed pong');
      return m;
    case 'error':
      if (!isErrorCode(m.code) || typeof m.message !== 'string') bad('malformed error');
      return m;
    default:
      return bad(`unknown message type ${JSON.stringify((m as { type: string }).type).slice(0, 40)}`);
  }
}
