import { MittsyncError } from './errors';

/**
 * A hybrid logical clock timestamp, serialized as one string that sorts in the clock's total
 * order: 12 hex digits of wall-clock milliseconds, 4 hex digits of logical counter, then the
 * replicaId as the tiebreak. `a < b` on two such strings is the LWW comparison, identical on
 * every replica, and a version costs one primitive in memory.
 *
 * @example `0192f0c1a2b30000r_abc123` = wall 0x0192f0c1a2b3, counter 0, replica `r_abc123`.
 */
export type Hlc = string;

/** Largest wall time an HLC can carry (2^48 - 1 ms, year 10889). */
export const MAX_WALL = 2 ** 48 - 1;
/** Largest logical counter per wall millisecond. */
export const MAX_COUNTER = 0xffff;
const REPLICA_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
const HLC_RE = /^[0-9a-f]{16}[A-Za-z0-9_-]{1,64}$/;

/** True when `id` can be a replicaId: 1-64 chars of `[A-Za-z0-9_-]`. */
export function isReplicaId(id: unknown): id is string {
  return typeof id === 'string' && REPLICA_ID_RE.test(id);
}

/** True when `h` is a well-formed HLC string. Cheap enough for every inbound op. */
export function isHlc(h: unknown): h is Hlc {
  return typeof h === 'string' && h.length <= 80 && HLC_RE.test(h);
}

function checkParts(wall: number, counter: number, node: string): void {
  if (!Number.isSafeInteger(wall) || wall < 0 || wall > MAX_WALL) {
    throw new MittsyncError('BAD_HLC', `HLC wall time ${wall} is not an integer in [0, 2^48)`);
  }
  if (!Number.isSafeInteger(counter) || counter < 0 || counter > MAX_COUNTER) {
    throw new MittsyncError('BAD_HLC', `HLC counter ${counter} is not an integer in [0, 65535]`);
  }
  if (!isReplicaId(node))
    throw new MittsyncError('BAD_HLC', `HLC node ${JSON.stringify(node)} is not a replicaId`);
}

/** Builds an HLC string; rejects negative, fractional, NaN or out-of-range parts. */
export function encodeHlc(wall: number, counter: number, node: string): Hlc {
  checkParts(wall, counter, node);
  return wall.toString(16).padStart(12, '0') + counter.toString(16).padStart(4, '0') + node;
}

/** Splits an HLC string into its parts; throws `BAD_HLC` on malformed input. */
export function decodeHlc(h: Hlc): { wall: number; counter: number; node: string } {
  if (!isHlc(h)) throw new MittsyncError('BAD_HLC', `malformed HLC ${JSON.stringify(h)}`);
  return {
    wall: Number.parseInt(h.slice(0, 12), 16),
    counter: Number.parseInt(h.slice(12, 16), 16),
    node: h.slice(16),
  };
}

/** Wall-clock part of an HLC, without validation (for already-validated values). */
export function hlcWall(h: Hlc): number {
  return Number.parseInt(h.slice(0, 12), 16);
}

/** Replica part of an HLC (the tiebreak), without validation. */
export function hlcNode(h: Hlc): string {
  return h.slice(16);
}

/** Total order on HLCs: negative, zero or positive like a comparator. */
export function compareHlc(a: Hlc, b: Hlc): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The clock of one replica. `now` is injected (tests and the simulator drive it); the clock
 * stays monotonic when wall time jumps backwards and absorbs remote timestamps it observes.
 */
export class HlcClock {
  private wall = 0;
  private counter = 0;

  constructor(
    readonly node: string,
    private readonly now: () => number,
    /** A floor restored from storage so a restart never reissues an older timestamp. */
    floor?: Hlc,
  ) {
    if (!isReplicaId(node)) throw new MittsyncError('BAD_HLC', `bad replicaId ${JSON.stringify(node)}`);
    if (floor !== undefined) this.observe(floor);
  }

  /** A fresh timestamp, greater than every one issued or observed before. */
  tick(): Hlc {
    const physical = Math.floor(this.now());
    if (physical > this.wall) {
      this.wall = physical;
      this.counter = 0;
    } else if (this.counter < MAX_COUNTER) {
      this.counter++;
    } else {
      // Counter exhausted within one millisecond: borrow the next millisecond.
      this.wall++;
      this.counter = 0;
    }
    return encodeHlc(this.wall, this.counter, this.node);
  }

  /** Moves the clock past a timestamp seen from elsewhere (remote op, stored floor). */
  observe(h: Hlc): void {
    const wall = hlcWall(h);
    const counter = Number.parseInt(h.slice(12, 16), 16);
    if (wall > this.wall || (wall === this.wall && counter > this.counter)) {
      this.wall = wall;
      this.counter = counter;
    }
  }

  /** The last timestamp issued or observed (the floor to persist). */
  last(): Hlc {
    return encodeHlc(this.wall, this.counter, this.node);
  }
}

/**
 * Checks a remote timestamp against the local wall clock: more than `maxDriftMs` ahead is
 * rejected so a client with a fast clock cannot win every future conflict.
 */
export function checkDrift(h: Hlc, nowMs: number, maxDriftMs: number): void {
  const wall = hlcWall(h);
  if (wall - nowMs > maxDriftMs) {
    throw new MittsyncError(
      'CLOCK_DRIFT',
      `timestamp is ${wall - nowMs} ms ahead of the relay clock (limit ${maxDriftMs} ms); fix the device clock`,
      { detail: { aheadMs: wall - nowMs, maxDriftMs } },
    );
  }
}
