import type { AckLevel, Bucket } from '@mittsync/peer';

/** What a load generator writes on each tick: `count` writes as (key, value) pairs. */
export type WritePicker<T> = (count: number) => [string, T][];

export interface LoadStats {
  running: boolean;
  rate: number;
  /** Writes handed to the replica. */
  issued: number;
  /** Writes acknowledged at the requested level, in the order they were issued. */
  acked: number;
  /** Writes whose outcome is unknown (their call failed). */
  failed: number;
  lastError: string | null;
}

const TICK_MS = 100;

/**
 * Writes `rate` writes per second to a bucket, one transaction per tick of 100 ms. A tick
 * whose previous transaction is still running adds its writes to the next one, so a slow
 * device does not pile up calls.
 */
export class LoadGenerator<T> {
  private timer: ReturnType<typeof setInterval> | undefined;
  /** The transaction in flight, if any. */
  private inflight: Promise<void> | null = null;
  private owed = 0;
  private last = 0;
  private readonly listeners = new Set<(s: LoadStats) => void>();
  readonly stats: LoadStats = { running: false, rate: 0, issued: 0, acked: 0, failed: 0, lastError: null };
  /** Keys acknowledged, in order (kept only when `keepKeys`; the tests read them). */
  readonly ackedKeys: string[] = [];

  constructor(
    private readonly bucket: Bucket<T>,
    private readonly pick: WritePicker<T>,
    private readonly opts: { ack?: AckLevel; keepKeys?: boolean } = {},
  ) {}

  onChange(l: (s: LoadStats) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  start(rate: number): void {
    this.stop();
    this.stats.rate = rate;
    this.stats.running = true;
    this.last = performance.now();
    this.owed = 0;
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.emit();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.stats.running = false;
    this.emit();
  }

  /** Resolves once no write of this generator is in flight. */
  async idle(): Promise<void> {
    while (this.inflight !== null) await this.inflight;
  }

  private tick(): void {
    const now = performance.now();
    this.owed += ((now - this.last) / 1000) * this.stats.rate;
    this.last = now;
    if (this.inflight !== null) return;
    const count = Math.floor(this.owed);
    if (count <= 0) return;
    this.owed -= count;
    const writes = this.pick(count);
    this.stats.issued += writes.length;
    this.inflight = this.bucket
      .transact(
        (tx) => {
          for (const [k, v] of writes) tx.put(k, v);
        },
        { ack: this.opts.ack ?? 'local' },
      )
      .then(
        () => {
          this.stats.acked += writes.length;
          if (this.opts.keepKeys) for (const [k] of writes) this.ackedKeys.push(k);
        },
        (e: unknown) => {
          this.stats.failed += writes.length;
          this.stats.lastError = e instanceof Error ? e.message : String(e);
        },
      )
      .finally(() => {
        this.inflight = null;
        this.emit();
      });
  }

  private emit(): void {
    for (const l of this.listeners) l(this.stats);
  }
}
