/** A seeded PRNG (sfc32): the same seed gives the same run, on any machine. */
export function prng(seed: number): () => number {
  let a = 0x9e3779b9 ^ seed;
  let b = 0x243f6a88 ^ Math.imul(seed, 0x85ebca6b);
  let c = 0xb7e15162 ^ Math.imul(seed, 0xc2b2ae35);
  let d = 1;
  const next = (): number => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 12; i++) next();
  return next;
}

interface Task {
  at: number;
  id: number;
  fn: () => void;
}

/**
 * Virtual time for the simulator: a binary heap of tasks ordered by (time, insertion).
 * Between tasks it lets every pending promise settle, so async code runs to its next timer
 * or message exactly as it would, but deterministically.
 */
export class Scheduler {
  now = 0;
  private heap: Task[] = [];
  private nextId = 1;
  private readonly cancelled = new Set<number>();
  steps = 0;

  setTimeout(fn: () => void, ms: number): number {
    const id = this.nextId++;
    this.push({ at: this.now + Math.max(0, ms), id, fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    if (typeof handle === 'number') this.cancelled.add(handle);
  }

  private push(t: Task): void {
    const h = this.heap;
    h.push(t);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (less(h[p] as Task, t)) break;
      h[i] = h[p] as Task;
      i = p;
    }
    h[i] = t;
  }

  private pop(): Task | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (top === undefined || last === undefined || h.length === 0) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      let mt = last;
      if (l < h.length && less(h[l] as Task, mt)) {
        m = l;
        mt = h[l] as Task;
      }
      if (r < h.length && less(h[r] as Task, mt)) {
        m = r;
        mt = h[r] as Task;
      }
      if (m === i) break;
      h[i] = mt;
      i = m;
    }
    h[i] = last;
    return top;
  }

  /** Runs tasks until virtual time `until` or until nothing is scheduled. */
  async runUntil(until: number, settle: () => Promise<void>): Promise<void> {
    await settle();
    for (;;) {
      const t = this.heap[0];
      if (t === undefined || t.at > until) break;
      this.pop();
      if (this.cancelled.delete(t.id)) continue;
      this.now = t.at;
      this.steps++;
      t.fn();
      await settle();
    }
    if (this.now < until) this.now = until;
  }
}

function less(x: Task, y: Task): boolean {
  return x.at < y.at || (x.at === y.at && x.id < y.id);
}
