import { Presets, SingleBar } from 'cli-progress';

/** Counts of a running export or import, as the progress display shows them. */
export interface ProgressReporter {
  /** Adds to the entries and bytes done. */
  add(entries: number, bytes: number): void;
  /** Sets the expected total of entries (undefined: unknown). */
  setTotal(total: number | undefined): void;
  /** Stops the display and prints one summary line. */
  stop(summary: string): void;
}

export interface ProgressOptions {
  /** What runs: `export todos`, `import todos`. */
  label: string;
  /** Entries done before this run (a resumed one): counted, not in the rate. */
  start?: number;
  total?: number | undefined;
  /**
   * The expected total of bytes, when the entries are not known ahead (an import file): the
   * bar and the time left follow the bytes then.
   */
  totalBytes?: number | undefined;
  /** Bytes done before this run. */
  startBytes?: number;
  /** Where it goes (default stderr: stdout may carry the data). */
  stream?: NodeJS.WriteStream;
  /** Nothing but the summary. */
  quiet?: boolean;
  /** Seconds between plain lines when not on a terminal (default 2). */
  intervalS?: number;
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${Math.ceil(s)}s`;
  return `${Math.floor(s / 60)}m${String(Math.ceil(s % 60)).padStart(2, '0')}s`;
}

/**
 * A progress display: cli-progress's bar (entries, bytes, rate, time left) on a terminal, a
 * plain line every few seconds otherwise (logs, pipes, CI), and a summary line at the end.
 */
export function createProgress(opts: ProgressOptions): ProgressReporter {
  const stream = opts.stream ?? process.stderr;
  const started = performance.now();
  const start = opts.start ?? 0;
  let total = opts.total;
  let done = start;
  const startBytes = opts.startBytes ?? 0;
  let bytes = startBytes;
  const byBytes = opts.totalBytes !== undefined && total === undefined;
  const elapsed = () => Math.max((performance.now() - started) / 1000, 0.001);
  const rate = () => (done - start) / elapsed();
  const left = () => {
    if (byBytes) return Math.max((opts.totalBytes ?? 0) - bytes, 0) / ((bytes - startBytes) / elapsed());
    return total === undefined ? Number.NaN : Math.max(total - done, 0) / rate();
  };
  const fields = () => ({
    entries: done.toLocaleString('en-US'),
    bytes: formatBytes(bytes),
    rate: Math.round(rate()).toLocaleString('en-US'),
    left: formatSeconds(left()),
  });

  if (opts.quiet !== true && stream.isTTY === true) {
    const of = byBytes
      ? `{entries} entries | {bytes} of ${formatBytes(opts.totalBytes ?? 0)}`
      : '{value}/{total} entries | {bytes}';
    const bar = new SingleBar(
      {
        format: `${opts.label} {bar} {percentage}% | ${of} | {rate}/s | {left} left`,
        stream,
        hideCursor: true,
        clearOnComplete: true,
        etaBuffer: 50,
      },
      Presets.shades_classic,
    );
    bar.start(byBytes ? (opts.totalBytes ?? 0) : (total ?? 0), byBytes ? bytes : done, fields());
    return {
      add(n, b) {
        done += n;
        bytes += b;
        if (!byBytes && total !== undefined && done > total) {
          total = done;
          bar.setTotal(total);
        }
        bar.update(byBytes ? bytes : done, fields());
      },
      setTotal(t) {
        if (byBytes) return;
        total = t;
        bar.setTotal(t ?? 0);
      },
      stop(summary) {
        bar.stop();
        stream.write(`${summary}\n`);
      },
    };
  }

  const interval = (opts.intervalS ?? 2) * 1000;
  let last = performance.now();
  return {
    add(n, b) {
      done += n;
      bytes += b;
      const now = performance.now();
      if (opts.quiet === true || now - last < interval) return;
      last = now;
      const f = fields();
      const of = total === undefined ? '' : `/${total}`;
      const ofBytes = byBytes ? ` of ${formatBytes(opts.totalBytes ?? 0)}` : '';
      stream.write(
        `${opts.label}: ${done}${of} entries, ${f.bytes}${ofBytes}, ${f.rate}/s, ${f.left} left\n`,
      );
    },
    setTotal(t) {
      total = t;
    },
    stop(summary) {
      stream.write(`${summary}\n`);
    },
  };
}

/** `123,456 entries in 4.2 s (29,394/s, 12.3 MiB)` */
export function summaryOf(entries: number, bytes: number, seconds: number): string {
  const r = Math.round(entries / Math.max(seconds, 0.001)).toLocaleString('en-US');
  return `${entries.toLocaleString('en-US')} entries in ${seconds.toFixed(1)} s (${r}/s, ${formatBytes(bytes)})`;
}
