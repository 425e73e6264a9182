import type {
  BucketHost,
  Env,
  ErrorCode,
  HostConnection,
  PageMsg,
  PageReqMsg,
  PushMsg,
  ReplicationSpec,
  ResetMsg,
  ServerMessage,
  SubscriptionPolicy,
  WireFormat,
} from '@mittsync/core';
import type { Authenticator } from './auth';
import type { RelayLimits } from './limits';

// The boundary between a session (one WebSocket speaking the protocol) and the runtime that
// hosts it: the Node relay today, a Durable Object per bucket on Workers next. Nothing here may
// assume Node, a process-wide event loop, or that a host outlives its sockets: a hibernating
// Durable Object is rebuilt from storage while its sockets stay open.

/**
 * What a session is, in a form a runtime can keep with its socket (a Durable Object's socket
 * attachment, at most 16 KiB; a spec and a token's prefixes take up to 4 KB each) and rebuild the session from when it wakes from hibernation. Only
 * sessions pinned to one bucket have one: their principal reduces to two booleans.
 */
export interface SessionSnapshot {
  v: 1;
  id: string;
  bucket: string;
  open: boolean;
  format: WireFormat;
  /** The client reads packed ops (`hello.packOps`). */
  packOps?: true;
  replicaId: string;
  expiresAt: number;
  read: boolean;
  write: boolean;
  subscribed: boolean;
  /** The subscription's policy when it is not `replica` (a woken host must still refuse its pushes). */
  policy?: SubscriptionPolicy;
  /** The subscription's replication spec, when it has one. */
  spec?: ReplicationSpec;
  /** The token's key prefixes for the bucket, when it limits them. */
  prefixes?: string[];
  /** The token's groups, when it has any (admin allow/deny lists). */
  groups?: string[];
}

/** What the relay needs of an accepted WebSocket, whatever the runtime. */
export interface RelaySocket {
  /** Sends one frame: bytes as a binary frame, a string as a text frame. */
  send(frame: Uint8Array | string): void;
  /** Closes the socket with a WebSocket close code and a reason of at most 123 bytes. */
  close(code: number, reason: string): void;
  /**
   * Bytes queued towards the client and not yet written. Where the runtime cannot tell
   * (workerd), bytes sent minus the bytes the client reported with `recv`.
   */
  readonly bufferedAmount: number;
  /** The client reported `bytes` received on this socket so far (`recv`, see `welcome.recvEvery`). */
  received?(bytes: number): void;
  /**
   * Keeps the session's snapshot with the socket, where the runtime can (a Durable Object's
   * socket attachment), so a host rebuilt after hibernation can restore the session.
   */
  remember?(snapshot: SessionSnapshot): void;
}

/** What the runtime reports to the relay about an accepted socket. */
export interface SocketHandler {
  /** One inbound frame: `isText` for a text frame (JSON), otherwise binary (MessagePack). */
  message(data: Uint8Array, isText: boolean): void;
  /** The socket closed (either side). */
  close(): void;
}

/** The counters a session bumps; the host decides where they are kept and reported. */
export interface SessionMetrics {
  /** Inbound frames seen, valid or not. */
  framesIn: number;
  /** Counts one refused frame or connection by its error code. */
  reject(code: ErrorCode): void;
}

/** A push a session hands to its host for the next commit. */
export interface SessionPush {
  bucket: string;
  /** The token subject, already checked against the socket's principal. */
  replicaId: string;
  msg: PushMsg;
  /** Where the ack (or the error) goes, after the commit. */
  conn: HostConnection;
  /** The token's key prefixes for the bucket: ops outside them are refused (`FORBIDDEN`). */
  prefixes?: readonly string[];
}

/** A session as its host sees it: what the host may ask of it. */
export interface HostedSession {
  /** Unique among the host's sessions; a plain string, so a host can persist it with its socket. */
  readonly id: string;
  readonly socket: RelaySocket;
  /** False once the session is closing: the host writes nothing more to its socket. */
  readonly writable: boolean;
  /** The socket's outbound queue passed its hard bound: close it without queueing more. */
  slowConsumer(): void;
  /** `bucket`'s host reloaded after a storage failure: tell the client to resume that bucket. */
  dropBucket(bucket: string, reason: ErrorCode): void;
  /** The host is shutting down: close the socket with `code` and `reason`. */
  shutdown(code: number, reason: string): void;
}

/**
 * What a session needs from the runtime hosting it. `Relay` implements it on Node (many buckets
 * per process, an LRU of resident hosts, one group commit per event-loop turn); an edge relay
 * implements it inside a Durable Object (one bucket per object, sockets accepted with the
 * hibernation API, no `bufferedAmount`). Every member is synchronous except token
 * verification, so a session handles a frame in one turn and its outbound frames keep their
 * order.
 */
export interface SessionHost {
  /** The limits this host enforces and announces in `welcome`. */
  readonly limits: RelayLimits;
  /**
   * How clients reach buckets, announced in `welcome`: `socketPerBucket` when each bucket has
   * a socket of its own (the edge relay), `recvEvery` when clients must report received bytes
   * (runtimes without `bufferedAmount`).
   */
  readonly route?: { socketPerBucket?: boolean; recvEvery?: number };
  /**
   * Clock and timers for the hello timeout, token expiry and rate limiting. A host that can be
   * evicted from memory (a hibernating Durable Object) loses armed timers and must re-arm them
   * for the sessions it rebuilds.
   */
  readonly env: Env;
  /** Verifies a token sent in `hello` (tokens checked at the upgrade never reach it). */
  readonly auth: Authenticator;
  /** Where the session counts frames and refusals. */
  readonly metrics: SessionMetrics;
  /**
   * The host of `bucket`, loaded if needed (for `sub` and page requests). A host that serves a
   * single bucket (a Durable Object) only ever has its own to give: which buckets reach which
   * object is the edge entry's routing decision, made before frames reach the session.
   */
  host(bucket: string): BucketHost;
  /** The host of `bucket` if it is loaded, without loading it (ping, unsub, teardown). */
  peek(bucket: string): BucketHost | undefined;
  /**
   * Queues a push for commit. The ack, the deliveries and flush results it causes go out only
   * after the commit is durable (on Node after the group commit; in a Durable Object the
   * output gate holds them until the storage writes before them are).
   */
  enqueue(push: SessionPush): void;
  /** Serves one catch-up page of `bucket`, within the host's page size limit. */
  page(bucket: string, req: PageReqMsg, epoch?: string, spec?: ReplicationSpec): PageMsg | ResetMsg;
  /**
   * Sends `msg` on `session`'s socket in its wire format, after any open commit so a client
   * never sees a delivery before the commit it depends on. Frames keep their order per socket.
   */
  sendTo(session: HostedSession, msg: ServerMessage, format: WireFormat, packOps?: boolean): void;
  /** Closes `session`'s socket, after the frames already sent to it. */
  closeSocket(session: HostedSession, code: number, reason: string): void;
  /** `session` ended: the host drops it (and whatever it keeps for its socket). */
  forget(session: HostedSession): void;
}
