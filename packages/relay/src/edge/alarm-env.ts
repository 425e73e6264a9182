import { type Env, systemEnv } from '@mittsync/core';

/** The part of `ctx.storage` the timers use. */
export interface AlarmStorageLike {
  setAlarm(scheduledTime: number): Promise<void> | void;
  deleteAlarm?(): Promise<void> | void;
}

interface Timer {
  at: number;
  fn: () => void;
}

/**
 * An {@link Env} whose timers are one Durable Object alarm: nothing in memory keeps the object
 * awake, so it can hibernate with timers pending. The alarm is set to the earliest deadline;
 * when it fires, the object calls {@link fire}, which runs what is due and sets the alarm to
 * the next one. Timers live in memory: an object evicted with timers pending wakes at the alarm
 * with none, and the sessions it restores arm theirs again (hello timeouts, token expiry); a
 * state flush lost that way is asked for again by its joiner.
 */
export class AlarmTimers implements Env {
  private readonly timers = new Map<number, Timer>();
  private next = 1;
  /** The deadline the storage alarm is set to, as far as this object knows. */
  private armedAt: number | undefined;
  private readonly base = systemEnv();

  constructor(
    private readonly storage: AlarmStorageLike,
    /** Where a timer that throws is reported; the other due timers still run. */
    private readonly onError: (e: unknown) => void = () => undefined,
  ) {}

  // Fields, not methods: callers pass `env.random` and `env.now` around unbound.
  readonly now = (): number => Date.now();
  readonly random: () => number = this.base.random;

  readonly setTimeout = (fn: () => void, ms: number): unknown => {
    const id = this.next++;
    const at = Date.now() + Math.max(0, ms);
    this.timers.set(id, { at, fn });
    if (this.armedAt === undefined || at < this.armedAt) this.arm(at);
    return id;
  };

  readonly clearTimeout = (handle: unknown): void => {
    if (typeof handle !== 'number') return;
    const t = this.timers.get(handle);
    if (t === undefined) return;
    this.timers.delete(handle);
    // The alarm was set for this one (a hello timeout cleared by the hello, typically): move it
    // to the next deadline, or remove it, so the object is not woken for nothing.
    if (t.at !== this.armedAt) return;
    const earliest = this.earliest();
    if (earliest === undefined) {
      this.armedAt = undefined;
      void this.storage.deleteAlarm?.();
    } else if (earliest > t.at) this.arm(earliest);
  };

  /** Pending timers (tests and metrics). */
  get size(): number {
    return this.timers.size;
  }

  /** Runs every timer that is due, then sets the alarm to the next deadline. */
  fire(): void {
    this.armedAt = undefined;
    const now = Date.now();
    const due = [...this.timers].filter(([, t]) => t.at <= now).sort((a, b) => a[1].at - b[1].at);
    for (const [id] of due) this.timers.delete(id);
    for (const [, t] of due) {
      try {
        t.fn();
      } catch (e) {
        this.onError(e);
      }
    }
    const earliest = this.earliest();
    if (earliest !== undefined && (this.armedAt === undefined || earliest < this.armedAt)) this.arm(earliest);
  }

  private earliest(): number | undefined {
    let earliest: number | undefined;
    for (const t of this.timers.values()) if (earliest === undefined || t.at < earliest) earliest = t.at;
    return earliest;
  }

  private arm(at: number): void {
    this.armedAt = at;
    void this.storage.setAlarm(at);
  }
}
