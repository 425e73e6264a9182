import type { Checksum } from './checksum';
import type { EntryColumns } from './columns';
import type { ErrorCode } from './errors';
import type { Entry, Op, SeqOp } from './model';
import type { ReplicationSpec } from './spec';

/** Bumped on any incompatible change to the messages below. Sent in `hello` and `welcome`. */
export const PROTOCOL_VERSION = 1;

// ---------------------------------------------------------------------------------------------
// Replica -> relay
// ---------------------------------------------------------------------------------------------

/**
 * The WebSocket subprotocol of this protocol. A client offers it, and the relay selects it, on
 * every upgrade; browsers carry their token beside it as {@link BEARER_SUBPROTOCOL_PREFIX}.
 */
export const SUBPROTOCOL = 'mittsync.v1';

/**
 * Prefix of the subprotocol that carries a bearer token on the upgrade request:
 * `mittsync.bearer.<jwt>`. A JWT (base64url segments joined by dots) is a valid subprotocol
 * token as it is (RFC 6455 section 4.1, RFC 7230 `tchar`), so it is not encoded again. The
 * relay never selects (echoes) it.
 */
export const BEARER_SUBPROTOCOL_PREFIX = 'mittsync.bearer.';

/**
 * First frame on a connection. Nothing else is handled before the relay answers `welcome`.
 * The token is not in it: the relay authenticates the upgrade request, before a socket exists.
 */
export interface HelloMsg {
  type: 'hello';
  /** Protocol version the client speaks; must equal the relay's {@link PROTOCOL_VERSION}. */
  v: number;
  /** The client's replicaId; must match the token's subject. */
  replicaId: string;
  /**
   * The packed-ops layout (`PACKED_OPS`) the client reads: a relay that knows it sends this
   * socket's `deliver` ops packed (binary sockets only). Others ignore it.
   */
  packOps?: number;
}

/**
 * A fresh token for a live socket, sent before the current one expires (any time after
 * `welcome`). Its subject must be the connection's replicaId; its scopes replace the old ones
 * (subscriptions the new token may no longer read are dropped with a `FORBIDDEN` error). The
 * relay answers `authed`, or an `error` (`UNAUTHENTICATED`, `TOKEN_EXPIRED`) and keeps the old
 * token until it expires.
 */
export interface AuthMsg {
  type: 'auth';
  /** Bearer token (JWT). */
  token: string;
}

/**
 * How a replica holds a bucket (see `Replica.openBucket`):
 * - `replica`: synchronized, read-write (the default);
 * - `readOnly`: synchronized, never writes; the relay refuses its pushes with `READ_ONLY`;
 * - `copy`: a consistent copy as of a checkpoint, then detached (no live stream); refreshed on
 *   demand with a resume from that checkpoint. Its local writes never leave the replica, and
 *   the relay refuses pushes on a copy subscription like a readOnly one's.
 * Neither `readOnly` nor `copy` subscribers take part in state flushes as writers.
 */
export type SubscriptionPolicy = 'replica' | 'readOnly' | 'copy';

/** Every {@link SubscriptionPolicy}, for validation and UIs. */
export const SUBSCRIPTION_POLICIES: readonly SubscriptionPolicy[] = ['replica', 'readOnly', 'copy'];

/**
 * Subscribe to a bucket and start a catch-up. The relay registers the live subscription and
 * answers `subscribed` in one step, so no op can fall between the stream and the download.
 */
export interface SubMsg {
  type: 'sub';
  bucket: string;
  /** Checkpoint to resume from; 0 joins from scratch. */
  since: number;
  /** Epoch the checkpoint belongs to; a mismatch makes the relay answer `reset`. */
  epoch?: string;
  /** Ask for a state flush of the bucket's connected writers (joins do). */
  flush: boolean;
  /** Chosen by the client, echoed in `subscribed`/`reset` so stale answers can be told apart. */
  subId: number;
  /**
   * The subscription's consistency policy; absent means `replica`. The relay remembers it for
   * the connection until the next `sub` or `unsub` of the bucket.
   */
  policy?: SubscriptionPolicy;
  /**
   * The subscription's replication spec (see `ReplicationSpec` in spec.ts): the relay serves
   * only its keys (and projected fields) on every path and refuses writes outside it with
   * `OUTSIDE_SPEC`. Absent: the whole bucket (or the token's key prefixes, when it has some).
   */
  spec?: ReplicationSpec;
}

/** Stop receiving a bucket's live ops. */
export interface UnsubMsg {
  type: 'unsub';
  bucket: string;
}

/** Local ops of the connection's replica, in `originSeq` order, starting at any unacked one. */
export interface PushMsg {
  type: 'push';
  bucket: string;
  ops: Op[];
}

/** Request one page of entries with `seq > since` and `after < key <= until`, in key order. */
export interface PageReqMsg {
  type: 'pageReq';
  bucket: string;
  /** Correlates the answering `page`. */
  reqId: number;
  since: number;
  /** Exclusive lower key bound (keyset pagination cursor); absent = from the first key. */
  after?: string;
  /** Inclusive upper key bound; absent = to the last key. */
  until?: string;
  limit: number;
  /**
   * Only keys of this spec (a replica with a spec sends its own; a widened one the part it
   * lacks). It must lie within the subscription's spec (else `FORBIDDEN`); the projection is
   * always the subscription's.
   */
  spec?: ReplicationSpec;
  /**
   * The replica reads pages by column: a relay that can (over a binary socket) answers with
   * `page.cols` instead of `page.entries`. Others ignore it.
   */
  cols?: true;
}

/** A writer's answer to `marker`: every op up to `sent` has been pushed. */
export interface MarkerReplyMsg {
  type: 'markerReply';
  bucket: string;
  flushId: string;
  /** The writer's transmission counter: the highest originSeq it has issued for the bucket. */
  sent: number;
}

/**
 * Flow report, sent only to a relay whose `welcome` set `recvEvery`: the bytes of every frame
 * this socket has received so far (binary frames by length, text frames by UTF-8 length,
 * `welcome` included). Sent whenever `recvEvery` more bytes arrived since the last report.
 * The relay's outbound queue for the socket is what it sent minus this: on runtimes without
 * `bufferedAmount` (workerd) that is how a slow consumer is found.
 */
export interface RecvMsg {
  type: 'recv';
  bytes: number;
}

/** Liveness probe; the relay answers `pong` with the head seq of every bucket this socket subscribes. */
export interface PingMsg {
  type: 'ping';
  id: number;
}

/**
 * The replica has durably stored every op of the bucket up to `seq` (its checkpoint). Sent
 * after the checkpoint advances, at most about once a second per bucket, and once after a
 * subscription is ready. The relay keeps it as the replica's acknowledged checkpoint: a
 * tombstone is purged once every live replica acknowledged a seq at or past it. Valid with
 * read access to the bucket, subscribed or not (a detached `copy` reports too); a seq past the
 * bucket's head is refused with `BAD_MESSAGE`.
 */
export interface CkptMsg {
  type: 'ckpt';
  bucket: string;
  seq: number;
}

export type ClientMessage =
  | HelloMsg
  | AuthMsg
  | SubMsg
  | UnsubMsg
  | PushMsg
  | PageReqMsg
  | MarkerReplyMsg
  | PingMsg
  | RecvMsg
  | CkptMsg;

// ---------------------------------------------------------------------------------------------
// Relay -> replica
// ---------------------------------------------------------------------------------------------

/** Limits the relay enforces, announced so clients can size their frames. */
export interface WireLimits {
  maxFrameBytes: number;
  maxOpsPerFrame: number;
  maxKeyBytes: number;
  maxValueBytes: number;
  maxDriftMs: number;
  maxBucketsPerSocket: number;
}

export interface WelcomeMsg {
  type: 'welcome';
  v: number;
  /** The relay's wall clock (ms) when it sent this, for clock-skew diagnostics. */
  relayTime: number;
  limits: WireLimits;
  /**
   * The relay serves each bucket on a socket of its own, at `<sync url>/<encodeURIComponent(bucket)>`
   * (the edge relay: one Durable Object per bucket). This socket then only answers `ping` and
   * `auth`; the client opens one socket per bucket, each with its own `hello`.
   */
  socketPerBucket?: boolean;
  /** Report received bytes with `recv` every this many bytes (see {@link RecvMsg}). */
  recvEvery?: number;
  /**
   * The packed-ops layout (`PACKED_OPS`) the relay reads in `push` (binary sockets only); it
   * also sends packed `deliver` ops when the hello asked for them. Absent: tuples only.
   */
  packOps?: number;
}

/** The subscription is live: every op with `seq >= from` will be delivered, in order. */
export interface SubscribedMsg {
  type: 'subscribed';
  bucket: string;
  /** Echo of `sub.subId`. */
  subId: number;
  /** Identity of the bucket's log; changes when the bucket is reset or restored. */
  epoch: string;
  /** First seq the live stream will carry (the relay's head + 1 at registration). */
  from: number;
  /** The relay's reception counter for this replica: highest originSeq it accepted. */
  received: number;
  /**
   * The replica's latest ops the relay refused (at most {@link MAX_REMEMBERED_REFUSALS}), as
   * their ack said: an ack lost with a broken connection must not turn a refusal into an
   * acceptance when `received` acknowledges the op.
   */
  rejected?: RejectedOp[];
  /** Checksum of the bucket at seq `from - 1`. */
  sum: Checksum;
  /** Key split points for parallel range downloads (may be empty). */
  splits: string[];
  /** Present when a state flush was started for this subscription. */
  flushId?: string;
  /**
   * The spec the relay applies to this subscription, when it applies one: the `sub`'s, or the
   * token's key prefixes for a `sub` without one. `sum` is then over the spec's entries only.
   */
  spec?: ReplicationSpec;
}

/** The checkpoint cannot be resumed (epoch changed, or older than the tombstone horizon). */
export interface ResetMsg {
  type: 'reset';
  bucket: string;
  /** Echo of `sub.subId`, or -1 when the reset answers a page request. */
  subId: number;
  epoch: string;
  /**
   * `epoch`: the bucket's log changed; `horizon`: a tombstone newer than the checkpoint was
   * purged; `retention`: the same, for a replica that was silent longer than the retention
   * period and so no longer held tombstones back; `ahead`: the checkpoint is past the head.
   */
  reason: 'epoch' | 'horizon' | 'retention' | 'ahead';
}

/** Live ops, in seq order, with the bucket checksum after the last of them. */
export interface DeliverMsg {
  type: 'deliver';
  bucket: string;
  ops: SeqOp[];
  sum: Checksum;
  /**
   * On a subscription with a spec: the seqs `[first, last]` this frame covers. Ops of those
   * seqs outside the spec were left out (`ops` may be empty); `sum` is over the spec's entries.
   */
  span?: [number, number];
}

export interface PageMsg {
  type: 'page';
  bucket: string;
  reqId: number;
  /** The page's entries; empty when they come as {@link PageMsg.cols}. */
  entries: Entry[];
  /** The page's entries by column, when the request asked for them (`pageReq.cols`). */
  cols?: EntryColumns;
  /** Cursor for the next page of this range, or null when the range is done. */
  next: string | null;
  /**
   * The bucket's head seq when the page was read: the page holds the state of its keys as of
   * that seq (a joining replica compares live ops' seqs with it).
   */
  head?: number;
}

/** An op the relay consumed (it counts for `received`) but did not apply, and why. */
export interface RejectedOp {
  originSeq: number;
  code: ErrorCode;
  message: string;
}

/** How many of a replica's latest refused ops a bucket's relay remembers for `subscribed`. */
export const MAX_REMEMBERED_REFUSALS = 64;

/** Cumulative acknowledgement: every op of this replica up to `upTo` is committed. */
export interface AckMsg {
  type: 'ack';
  bucket: string;
  upTo: number;
  /** The bucket's head seq after the commit: every op of this batch that changed state has a seq <= this. */
  seq?: number;
  /** Ops consumed but not applied, with the reason (the write's promise rejects with it). */
  rejected?: RejectedOp[];
  /**
   * The greatest originSeq of the replica's the relay has refused, when it refused any: an
   * ack that overtook the one listing a refusal (or outlived it) tells the replica it missed
   * one, and it learns which from the `subscribed` of a re-join.
   */
  refusedUpTo?: number;
  /** True when the frame skipped an originSeq: the sender must resend from `upTo + 1`. */
  gap?: boolean;
}

/** State flush: push everything you have not sent, then answer `markerReply`. */
export interface MarkerMsg {
  type: 'marker';
  bucket: string;
  flushId: string;
}

/** The state flush for a subscription is complete. */
export interface FlushedMsg {
  type: 'flushed';
  bucket: string;
  flushId: string;
  /** Every covered writer's op up to its reported counter has a seq <= this. */
  seq: number;
  /** Writers whose reported writes are all included. */
  covered: string[];
  /** Writers that disconnected or timed out before their counters matched. */
  missed: { replicaId: string; reason: 'disconnected' | 'timeout' }[];
}

/** The relay dropped this subscription (slow consumer, eviction): resume from the checkpoint. */
export interface ResyncMsg {
  type: 'resync';
  bucket: string;
  reason: ErrorCode;
}

/**
 * Answer to `ping`: each subscribed bucket's head seq. A replica whose checkpoint stays below
 * a reported head has lost the tail of its stream (a gap no later seq reveals) and resumes.
 */
export interface PongMsg {
  type: 'pong';
  id: number;
  heads: Record<string, number>;
}

/** Answer to `auth`: the socket now runs on the fresh token. */
export interface AuthedMsg {
  type: 'authed';
  /** When the fresh token expires (ms since the epoch). */
  expiresAt: number;
}

export interface ErrorMsg {
  type: 'error';
  code: ErrorCode;
  message: string;
  bucket?: string;
  reqId?: number;
}

export type ServerMessage =
  | WelcomeMsg
  | SubscribedMsg
  | ResetMsg
  | DeliverMsg
  | PageMsg
  | AckMsg
  | MarkerMsg
  | FlushedMsg
  | ResyncMsg
  | PongMsg
  | AuthedMsg
  | ErrorMsg;

/** WebSocket close codes the relay uses (4000-4999 are application codes). */
export const CLOSE_CODES = {
  /** Normal close. */
  NORMAL: 1000,
  /** Relay restarting: reconnect with backoff. */
  RESTARTING: 1012,
  /** Relay overloaded: reconnect later with backoff. */
  TRY_AGAIN_LATER: 1013,
  /** The first frame was not a valid hello, or the protocol version differs. */
  PROTOCOL: 4000,
  /** Missing or invalid token. */
  UNAUTHENTICATED: 4001,
  /** The token expired while connected: fetch a new one and reconnect. */
  TOKEN_EXPIRED: 4002,
  /**
   * A valid token used for another replica: `hello.replicaId` is not its subject. An
   * authorization failure (as HTTP 403), not an authentication one: a fresh token for the same
   * subject fails again.
   */
  FORBIDDEN: 4003,
  /** Too many frames, ops or connections. */
  RATE_LIMITED: 4008,
  /** A frame exceeded the size limit. */
  FRAME_TOO_LARGE: 4009,
  /** The client did not read fast enough; reconnect and resume. */
  SLOW_CONSUMER: 4010,
} as const;
