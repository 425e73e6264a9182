import type { Browser } from 'playwright';

export type TraceEvent = {
  name: string;
  ph: string;
  pid: number;
  tid: number;
  ts: number;
  dur?: number;
  tdur?: number;
  args?: { data?: { startTime?: number } };
};

/**
 * Picks the events `keep` wants out of a Chromium trace in JSON, given in chunks: each object
 * of the `traceEvents` array is cut out by a small scanner and parsed only if `keep` accepts
 * its text. A trace of every process over a thousand deliveries is larger than one JavaScript
 * string can be, so it is never held whole.
 */
class TraceEventFilter {
  readonly events: TraceEvent[] = [];
  private depth = 0;
  private inString = false;
  private escaped = false;
  private part = '';
  private capturing = false;

  constructor(private readonly keep: (raw: string) => boolean) {}

  push(chunk: string): void {
    let from = this.capturing ? 0 : -1;
    for (let j = 0; j < chunk.length; j++) {
      const c = chunk.charCodeAt(j);
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === 0x5c) this.escaped = true;
        else if (c === 0x22) this.inString = false;
        continue;
      }
      if (c === 0x22) this.inString = true;
      else if (c === 0x7b || c === 0x5b) {
        // An object inside the top-level object's array: one event.
        if (c === 0x7b && this.depth === 2) {
          this.capturing = true;
          from = j;
        }
        this.depth++;
      } else if (c === 0x7d || c === 0x5d) {
        this.depth--;
        if (this.capturing && this.depth === 2) {
          const raw = this.part + chunk.slice(from, j + 1);
          this.part = '';
          this.capturing = false;
          from = -1;
          if (this.keep(raw)) this.events.push(JSON.parse(raw) as TraceEvent);
        }
      }
    }
    if (this.capturing) this.part += chunk.slice(Math.max(from, 0));
  }
}

/**
 * Traces `run` in `categories` (every process of the browser) and returns the events whose
 * JSON text contains one of `names`, read from Chromium as a stream (see {@link TraceEventFilter}).
 */
export async function traceEvents(
  browser: Browser,
  categories: readonly string[],
  names: readonly string[],
  run: () => Promise<void>,
): Promise<TraceEvent[]> {
  const cdp = await browser.newBrowserCDPSession();
  try {
    await cdp.send('Tracing.start', {
      transferMode: 'ReturnAsStream',
      traceConfig: { includedCategories: [...categories] },
    });
    await run();
    const done = new Promise<{ stream?: string; dataLossOccurred: boolean }>((resolve) =>
      cdp.once('Tracing.tracingComplete', resolve),
    );
    await cdp.send('Tracing.end');
    const { stream: handle, dataLossOccurred } = await done;
    if (handle === undefined) throw new Error('the trace came without a stream');
    if (dataLossOccurred)
      throw new Error('the trace lost events (its buffer filled): trace fewer batches at a time');
    const filter = new TraceEventFilter((raw) => names.some((n) => raw.includes(n)));
    const utf8 = new TextDecoder();
    for (;;) {
      const { data, eof, base64Encoded } = await cdp.send('IO.read', { handle, size: 1 << 22 });
      filter.push(base64Encoded ? utf8.decode(Buffer.from(data, 'base64'), { stream: true }) : data);
      if (eof) break;
    }
    await cdp.send('IO.close', { handle });
    return filter.events;
  } finally {
    await cdp.detach().catch(() => undefined);
  }
}

/**
 * Thread (CPU) time of the main-thread tasks that ran the deliveries whose handlers started at
 * `starts` (page clock, ms), from a Chromium trace: for each, the `RunTask` event (category
 * `toplevel`) that was running then, its `tdur`. A task is the whole delivery, message
 * deserialization included; time the OS gave other threads meanwhile is not in it. The page
 * clock is lined up with the trace clock by the `mittsync-clock` mark (see `clockMark`), so
 * nothing is added to the measured tasks themselves (a user-timing mark costs ~0.1 ms).
 */
export function deliveryTaskCpuMs(
  events: readonly TraceEvent[],
  starts: readonly number[],
): { cpu: number[]; tasks: TraceEvent[] } {
  const clock = events.find((e) => e.name === 'mittsync-clock');
  const at = clock?.args?.data?.startTime;
  if (clock === undefined || at === undefined) throw new Error('no clock mark in the trace');
  const tasks = events
    .filter(
      (e) =>
        e.ph === 'X' &&
        e.name === 'ThreadControllerImpl::RunTask' &&
        e.pid === clock.pid &&
        e.tid === clock.tid,
    )
    .sort((a, b) => a.ts - b.ts);
  // performance.now() is coarsened to 0.1 ms outside cross-origin isolation: allow for that.
  const slack = 150;
  const found = starts.map((start) => {
    const t = clock.ts + (start - at) * 1000;
    let best: TraceEvent | undefined;
    for (const task of tasks) {
      if (task.ts > t + slack) break;
      if (task.ts + (task.dur ?? 0) < t - slack) continue;
      // The longest candidate: a delivery outlasts the few small tasks around it.
      if (best === undefined || (task.dur ?? 0) > (best.dur ?? 0)) best = task;
    }
    if (best?.tdur === undefined)
      throw new Error(`no traced task ran the delivery at ${start.toFixed(1)} ms`);
    return best;
  });
  return { cpu: found.map((t) => (t.tdur as number) / 1000), tasks: found };
}

/** The task holding each `mittsync-delivery` mark (a check of {@link deliveryTaskCpuMs}). */
export function markedTasks(events: readonly TraceEvent[]): TraceEvent[] {
  const tasks = events.filter((e) => e.ph === 'X' && e.name === 'ThreadControllerImpl::RunTask');
  return events
    .filter((e) => e.name === 'mittsync-delivery')
    .map((m) => {
      const t = tasks.find(
        (x) => x.pid === m.pid && x.tid === m.tid && x.ts <= m.ts && x.ts + (x.dur ?? 0) >= m.ts,
      );
      if (t === undefined) throw new Error('mark outside any task');
      return t;
    });
}
