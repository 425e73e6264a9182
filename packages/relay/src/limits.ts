import { DEFAULT_LIMITS, DEFAULT_PAGE_BYTES, MittsyncError, type WireLimits } from '@mittsync/core';

/**
 * Every limit the relay enforces. The wire limits are announced to clients in `welcome`; the
 * rest protect the relay from one client starving the others. Defaults are in
 * {@link DEFAULT_RELAY_LIMITS} and documented in the README.
 */
export interface RelayLimits extends WireLimits {
  /** WebSocket upgrades accepted per client address per minute (HTTP 429 past it). */
  connectionsPerAddressPerMinute: number;
  /** HTTP page and push requests accepted per client address per minute (HTTP 429 past it). */
  httpRequestsPerAddressPerMinute: number;
  /**
   * Ops per connection per second, with a burst of one second's worth. Every frame costs at
   * least one, so this also caps frame rates. Over it a frame is refused with `RATE_LIMITED`;
   * a client that keeps going past twice the allowance is closed with 4008.
   */
  opsPerConnectionPerSecond: number;
  /**
   * Bytes queued towards one socket past which its subscriptions are dropped with `resync`
   * (the client resumes); past twice this the socket is closed with 4010.
   */
  maxOutboundBytes: number;
  /** Milliseconds a new socket gets to send a valid `hello`. */
  helloTimeoutMs: number;
  /** Largest `limit` of one page request (the host caps it too). */
  maxPageEntries: number;
  /**
   * Byte budget of one page, socket or HTTP: a page ends at the first entry past it and its
   * `next` cursor continues from there (the bucket host enforces it for both).
   */
  maxPageBytes: number;
  /** HTTP page responses in flight (admitted, body not yet handed to the socket) for the whole relay. */
  maxPagesInFlight: number;
  /** HTTP page responses in flight per principal (token subject). Past either cap: 429 `RATE_LIMITED`, `Retry-After`. */
  maxPagesInFlightPerPrincipal: number;
  /** Node: time to receive a request's headers (slow or half-sent headers are answered 408 and closed). */
  httpHeadersTimeoutMs: number;
  /** Node: time to receive a whole request, body included. Not applied to WebSocket upgrades once accepted. */
  httpRequestTimeoutMs: number;
  /** Node: how long an idle keep-alive HTTP connection stays open between requests. */
  httpKeepAliveTimeoutMs: number;
  /** Node: an HTTP connection with no progress in either direction (a response nobody reads) is cut after this. */
  httpIdleTimeoutMs: number;
}

/** The defaults: generous for real apps, small enough that one client cannot hurt the rest. */
export const DEFAULT_RELAY_LIMITS: RelayLimits = {
  ...DEFAULT_LIMITS,
  connectionsPerAddressPerMinute: 120,
  httpRequestsPerAddressPerMinute: 6_000,
  opsPerConnectionPerSecond: 50_000,
  maxOutboundBytes: 8 * 1024 * 1024,
  helloTimeoutMs: 10_000,
  maxPageEntries: 10_000,
  maxPageBytes: DEFAULT_PAGE_BYTES,
  maxPagesInFlight: 64,
  maxPagesInFlightPerPrincipal: 8,
  httpHeadersTimeoutMs: 10_000,
  httpRequestTimeoutMs: 30_000,
  httpKeepAliveTimeoutMs: 5_000,
  httpIdleTimeoutMs: 30_000,
};

/** The names of all limits, in documentation order. */
export const RELAY_LIMIT_NAMES = Object.keys(DEFAULT_RELAY_LIMITS) as (keyof RelayLimits)[];

/** Merges overrides onto the defaults, rejecting unknown names and non-positive numbers. */
export function resolveLimits(overrides: Partial<RelayLimits> = {}): RelayLimits {
  const out: RelayLimits = { ...DEFAULT_RELAY_LIMITS };
  for (const [name, value] of Object.entries(overrides)) {
    if (value === undefined) continue;
    if (!(name in DEFAULT_RELAY_LIMITS)) {
      throw new MittsyncError('BAD_MESSAGE', `unknown relay limit ${JSON.stringify(name)}`, {
        detail: { known: RELAY_LIMIT_NAMES },
      });
    }
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      throw new MittsyncError(
        'BAD_MESSAGE',
        `relay limit ${name} must be a positive number, got ${String(value)}`,
      );
    }
    out[name as keyof RelayLimits] = value;
  }
  return out;
}

/** The part of the limits a client needs to size its frames. */
export function wireLimits(l: RelayLimits): WireLimits {
  return {
    maxFrameBytes: l.maxFrameBytes,
    maxOpsPerFrame: l.maxOpsPerFrame,
    maxKeyBytes: l.maxKeyBytes,
    maxValueBytes: l.maxValueBytes,
    maxDriftMs: l.maxDriftMs,
    maxBucketsPerSocket: l.maxBucketsPerSocket,
  };
}

/**
 * A token bucket: `rate` tokens per second, holding at most `rate` (one second of burst).
 * `take` may drive the balance negative so sustained abuse can be told from a burst.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly rate: number,
    now: number,
  ) {
    this.tokens = rate;
    this.last = now;
  }

  /** Takes `n` tokens if there are enough; otherwise charges one (the work of refusing). */
  take(n: number, now: number): boolean {
    const elapsed = now - this.last;
    if (elapsed > 0) {
      this.tokens = Math.min(this.rate, this.tokens + (elapsed * this.rate) / 1000);
      this.last = now;
    }
    if (this.tokens >= n) {
      this.tokens -= n;
      return true;
    }
    this.tokens -= 1;
    return false;
  }

  /** True once the client has kept sending past twice its allowance. */
  get abusive(): boolean {
    return this.tokens < -this.rate;
  }
}

/** Fixed one-minute windows of counts per key (client address), pruned as they expire. */
export class WindowCounter {
  private window = 0;
  private counts = new Map<string, number>();

  constructor(private readonly perMinute: number) {}

  /** Counts one event for `key`; false when the key is over its allowance this minute. */
  hit(key: string, now: number): boolean {
    const w = Math.floor(now / 60_000);
    if (w !== this.window) {
      this.window = w;
      this.counts = new Map();
    }
    const n = (this.counts.get(key) ?? 0) + 1;
    this.counts.set(key, n);
    return n <= this.perMinute;
  }
}
