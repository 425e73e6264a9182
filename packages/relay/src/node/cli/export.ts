import {
  closeSync,
  createWriteStream,
  existsSync,
  openSync,
  readSync,
  statSync,
  truncateSync,
} from 'node:fs';
import type { Writable } from 'node:stream';
import { MittsyncError, type PageMsg } from '@mittsync/core';
import type { RelayClient } from './client';
import { createProgress, summaryOf } from './progress';

export interface ExportOptions {
  bucket: string;
  /** A file to write (default: stdout). */
  out?: string | undefined;
  /** Continue the file `out` after the last complete line it holds. */
  resume?: boolean;
  /** Entries per page request (the relay caps it; default 10,000). */
  pageSize?: number;
  /** Stop after this many entries in this run (a partial export, resumable later). */
  max?: number | undefined;
  quiet?: boolean;
}

export interface ExportResult {
  /** Entries written by this run. */
  entries: number;
  bytes: number;
  /** True when the whole bucket is in the file. */
  complete: boolean;
}

/** The NDJSON line of one entry: `{"key":...,"value":...}`. */
export function entryLine(key: string, value: unknown): string {
  return `${JSON.stringify({ key, value })}\n`;
}

/**
 * Where a resumed export continues: cuts a half-written last line (the process was killed in
 * the middle of it) and returns the key of the last complete line and the number of lines,
 * reading the file in fixed-size blocks.
 */
export function resumePoint(file: string): { after: string | undefined; lines: number } {
  const size = statSync(file).size;
  const fd = openSync(file, 'r');
  try {
    const block = Buffer.allocUnsafe(64 * 1024);
    // The end of the last complete line: scan back from the end for a newline.
    let end = 0;
    for (let pos = size; pos > 0 && end === 0; ) {
      const n = Math.min(block.length, pos);
      pos -= n;
      readSync(fd, block, 0, n, pos);
      const nl = block.subarray(0, n).lastIndexOf(10);
      if (nl >= 0) end = pos + nl + 1;
    }
    if (end < size) truncateSync(file, end);
    if (end === 0) return { after: undefined, lines: 0 };
    // The last line starts after the newline before it.
    let start = 0;
    for (let pos = end - 1; pos > 0 && start === 0; ) {
      const n = Math.min(block.length, pos);
      pos -= n;
      readSync(fd, block, 0, n, pos);
      const nl = block.subarray(0, n).lastIndexOf(10);
      if (nl >= 0) start = pos + nl + 1;
    }
    const last = Buffer.allocUnsafe(end - start);
    readSync(fd, last, 0, last.length, start);
    let key: unknown;
    try {
      key = (JSON.parse(last.toString('utf8')) as { key?: unknown }).key;
    } catch {
      key = undefined;
    }
    if (typeof key !== 'string')
      throw new MittsyncError('BAD_MESSAGE', `${file} does not end with an exported entry: cannot resume it`);
    let lines = 0;
    for (let pos = 0; pos < end; ) {
      const n = readSync(fd, block, 0, Math.min(block.length, end - pos), pos);
      for (let i = 0; i < n; i++) if (block[i] === 10) lines++;
      pos += n;
    }
    return { after: key, lines };
  } finally {
    closeSync(fd);
  }
}

function write(out: Writable, chunk: string): Promise<void> | undefined {
  if (out.write(chunk)) return undefined;
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => reject(e);
    out.once('error', onError);
    out.once('drain', () => {
      out.off('error', onError);
      resolve();
    });
  });
}

/**
 * `mittsync export <bucket>`: every live entry of the bucket as NDJSON, in key order, paged
 * through the relay's HTTP page API with keyset cursors: one page in memory and the next one
 * on its way, whatever the bucket's size. The copy is read from the live bucket without a
 * snapshot: a key written during the export appears with the value it had when its page was
 * read. `resume` continues after the last complete line of `out`.
 */
export async function runExport(client: RelayClient, opts: ExportOptions): Promise<ExportResult> {
  const info = await client.existing(opts.bucket);
  let after: string | undefined;
  let already = 0;
  if (opts.resume === true) {
    if (opts.out === undefined) throw new MittsyncError('BAD_MESSAGE', '--resume needs --out <file>');
    if (existsSync(opts.out)) ({ after, lines: already } = resumePoint(opts.out));
  }
  const out: Writable =
    opts.out === undefined
      ? process.stdout
      : createWriteStream(opts.out, { flags: opts.resume === true ? 'a' : 'w' });
  const progress = createProgress({
    label: `export ${opts.bucket}`,
    start: already,
    total: info.entries,
    quiet: opts.quiet === true,
  });
  const started = performance.now();
  const limit = opts.pageSize ?? 10_000;
  let entries = 0;
  let bytes = 0;
  let complete = false;
  try {
    let next: Promise<PageMsg> | undefined = client.page(opts.bucket, after, limit);
    while (next !== undefined) {
      const page: PageMsg = await next;
      // The next page downloads while this one is written.
      next = page.next === null ? undefined : client.page(opts.bucket, page.next, limit);
      let chunk = '';
      let n = 0;
      for (const e of page.entries) {
        if (e.deleted === true) continue;
        if (opts.max !== undefined && entries + n >= opts.max) break;
        chunk += entryLine(e.key, e.value);
        n++;
      }
      const b = Buffer.byteLength(chunk);
      await write(out, chunk);
      entries += n;
      bytes += b;
      progress.add(n, b);
      if (opts.max !== undefined && entries >= opts.max) {
        complete = page.next === null && n === page.entries.filter((e) => e.deleted !== true).length;
        await next?.catch(() => undefined);
        break;
      }
      if (page.next === null) complete = true;
    }
  } finally {
    if (out !== process.stdout) await new Promise<void>((r) => out.end(r));
  }
  const s = (performance.now() - started) / 1000;
  progress.stop(
    `export ${opts.bucket}: ${summaryOf(entries, bytes, s)}${already > 0 ? `, after ${already} already in ${opts.out}` : ''}${complete ? '' : ' (stopped before the end: --resume continues)'}`,
  );
  return { entries, bytes, complete };
}
