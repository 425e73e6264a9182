import type { Env } from './env';
import type { CkptMsg } from './protocol';

interface Reported {
  /** Last seq sent to the relay (-1: none on this connection). */
  sent: number;
  /** Newest durable checkpoint noted. */
  latest: number;
  /** When the last `ckpt` went out. */
  at: number;
  timer: unknown;
}

/**
 * Tells the relay each bucket's durable checkpoint (`ckpt`), at most once per `everyMs` per
 * bucket, the newest one always following after a quiet spell: the relay collects tombstones
 * once every live replica has passed them, so a replica that stopped reporting holds them.
 */
export class CheckpointReporter {
  private readonly buckets = new Map<string, Reported>();

  constructor(
    private readonly env: Env,
    private readonly send: (msg: CkptMsg) => void,
    private readonly isOpen: () => boolean,
    private readonly everyMs = 1_000,
  ) {}

  /** `bucket`'s checkpoint is durably `seq` now. */
  note(bucket: string, seq: number): void {
    let r = this.buckets.get(bucket);
    if (r === undefined) {
      r = { sent: -1, latest: -1, at: Number.NEGATIVE_INFINITY, timer: undefined };
      this.buckets.set(bucket, r);
    }
    // A lower checkpoint is a re-join (new epoch): report from scratch.
    if (seq < r.latest) r.sent = -1;
    r.latest = seq;
    if (seq === r.sent || r.timer !== undefined) return;
    const wait = r.at + this.everyMs - this.env.now();
    if (wait <= 0) this.flush(bucket, r);
    else {
      const rep = r;
      rep.timer = this.env.setTimeout(() => {
        rep.timer = undefined;
        this.flush(bucket, rep);
      }, wait);
    }
  }

  private flush(bucket: string, r: Reported): void {
    if (!this.isOpen() || r.latest === r.sent || this.buckets.get(bucket) !== r) return;
    this.send({ type: 'ckpt', bucket, seq: r.latest });
    r.sent = r.latest;
    r.at = this.env.now();
  }

  /** The connection dropped: the next connection hears every checkpoint again. */
  reset(): void {
    for (const r of this.buckets.values()) this.env.clearTimeout(r.timer);
    this.buckets.clear();
  }
}
