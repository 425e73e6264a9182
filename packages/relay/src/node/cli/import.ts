import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { DEFAULT_LIMITS, MittsyncError, type Op, validateClientMessage } from '@mittsync/core';
import { HlcClock, opBytes } from '@mittsync/core/model';
import type { RelayClient } from './client';
import { createProgress, summaryOf } from './progress';
import { type CsvOptions, type ImportFormat, type ImportRecord, readRecords } from './records';

export interface ImportOptions {
  bucket: string;
  file: string;
  format: ImportFormat;
  csv?: CsvOptions;
  /** Where progress is kept (default `<file>.<bucket>.mittsync-import.json`). */
  checkpoint?: string | undefined;
  /** Ignore (and replace) an existing checkpoint. */
  restart?: boolean;
  /** Ops per push (default 2,000, the relay's `maxOpsPerFrame`). */
  batchOps?: number;
  /** Stop after this many records in this run (a partial import, resumable later). */
  max?: number | undefined;
  quiet?: boolean;
}

export interface ImportResult {
  /** Records pushed and acknowledged by this run. */
  entries: number;
  bytes: number;
  /** Records of the file acknowledged so far, this run and earlier ones. */
  acked: number;
  complete: boolean;
}

/**
 * What an import remembers between runs. Record `i` of the file is pushed as originSeq
 * `base + i` of the token's subject: the relay drops an op whose originSeq it already has, so
 * re-sending after an interruption (or a lost ack) never applies a record twice.
 */
interface Checkpoint {
  v: 1;
  relay: string;
  bucket: string;
  /** The file as it was when the import began: a changed file starts over. */
  file: { size: number; mtimeMs: number };
  epoch: string;
  origin: string;
  /** The dev token the import wrote with (dev relays only), to resume as the same replica. */
  devToken?: string;
  base: number;
  /** Records acknowledged (the file's first `acked` records are on the relay). */
  acked: number;
  /** Bytes of the file those records take (for progress). */
  ackedBytes?: number;
  done: boolean;
}

function loadCheckpoint(path: string): Checkpoint | undefined {
  if (!existsSync(path)) return undefined;
  try {
    const c = JSON.parse(readFileSync(path, 'utf8')) as Checkpoint;
    return c.v === 1 ? c : undefined;
  } catch {
    return undefined;
  }
}

/** Where an import of `file` into `bucket` keeps its progress unless told otherwise. */
export function defaultCheckpoint(file: string, bucket: string): string {
  return `${file}.${bucket.replace(/[^A-Za-z0-9_.-]/g, '_')}.mittsync-import.json`;
}

/** The dev token the import of `file` wrote with, if it used one. */
export function checkpointDevToken(file: string, bucket: string, checkpoint?: string): string | undefined {
  return loadCheckpoint(checkpoint ?? defaultCheckpoint(file, bucket))?.devToken;
}

function saveCheckpoint(path: string, c: Checkpoint): void {
  // Renamed into place: a kill mid-write leaves the previous checkpoint, never half of one.
  writeFileSync(`${path}.tmp`, JSON.stringify(c));
  renameSync(`${path}.tmp`, path);
}

/**
 * Pushes in flight at once. Two measured no faster on loopback (200k records: 4.8-7.4 s
 * against 5.4-8.0 s, noisy): they travel on two connections, and about one batch in eight
 * arrived before the one it follows and was sent again.
 */
const PUSH_WINDOW = 1;

/** Ops of one push: at most `maxOps`, and well under the relay's frame size. */
const FRAME_BUDGET = Math.floor(DEFAULT_LIMITS.maxFrameBytes * 0.75);

/**
 * `mittsync import <bucket> <file>`: streams NDJSON or CSV records into the bucket through the
 * relay's HTTP push API, one acknowledged batch at a time (the next batch is read while one
 * is in flight). After each ack the checkpoint file records how many records are on the relay;
 * a later run with the same file continues from there, and a completed import run again does
 * nothing (`restart` writes every record again, which leaves the same values).
 */
export async function runImport(
  client: RelayClient,
  relayUrl: string,
  opts: ImportOptions,
): Promise<ImportResult> {
  if (!existsSync(opts.file)) throw new MittsyncError('BAD_MESSAGE', `no such file: ${opts.file}`);
  if (client.subject === '')
    throw new MittsyncError(
      'UNAUTHENTICATED',
      'the token has no subject (sub): imports write as that replica',
    );
  const checkpointPath = opts.checkpoint ?? defaultCheckpoint(opts.file, opts.bucket);
  const stat = statSync(opts.file);
  const info = await client.info(opts.bucket);
  let cp = opts.restart === true ? undefined : loadCheckpoint(checkpointPath);
  const sameRun =
    cp !== undefined &&
    cp.relay === relayUrl &&
    cp.bucket === opts.bucket &&
    cp.origin === client.subject &&
    cp.file.size === stat.size &&
    cp.file.mtimeMs === stat.mtimeMs;
  let note = '';
  if (cp !== undefined && !sameRun) {
    note = ' (the checkpoint was for another file, bucket, relay or token: starting over)';
    cp = undefined;
  } else if (cp !== undefined && cp.epoch !== info.epoch) {
    note = ' (the bucket was reset on the relay since the checkpoint: starting over)';
    cp = undefined;
  }
  if (cp?.done === true) {
    process.stderr.write(
      `import ${opts.bucket}: ${opts.file} is already imported (${cp.acked} records; ${checkpointPath}: --restart to import it again)\n`,
    );
    return { entries: 0, bytes: 0, acked: cp.acked, complete: true };
  }
  cp ??= {
    v: 1,
    relay: relayUrl,
    bucket: opts.bucket,
    file: { size: stat.size, mtimeMs: stat.mtimeMs },
    epoch: info.epoch,
    origin: client.subject,
    base: info.received,
    acked: 0,
    done: false,
    ...(client.devToken === undefined ? {} : { devToken: client.devToken }),
  };
  if (info.received < cp.base) {
    throw new MittsyncError(
      'INTERNAL',
      `the relay has fewer of this token's ops (${info.received}) than the checkpoint's start (${cp.base}): use --restart`,
    );
  }
  const state: Checkpoint = cp;
  saveCheckpoint(checkpointPath, state);
  const skip = state.acked;
  const clock = new HlcClock(client.subject, Date.now);
  const maxOps = Math.min(opts.batchOps ?? DEFAULT_LIMITS.maxOpsPerFrame, DEFAULT_LIMITS.maxOpsPerFrame);
  const progress = createProgress({
    label: `import ${opts.bucket}`,
    start: skip,
    totalBytes: stat.size,
    startBytes: state.ackedBytes ?? 0,
    quiet: opts.quiet === true,
  });
  if (note !== '' && opts.quiet !== true) process.stderr.write(`import ${opts.bucket}:${note}\n`);
  const started = performance.now();
  let entries = 0;
  let bytes = 0;

  const send = async (batchOps: Op[], recBytes: number, lastN: number, prev: Promise<void> | undefined) => {
    try {
      validateClientMessage({ type: 'push', bucket: opts.bucket, ops: batchOps });
    } catch {
      // Name the record: validate them one by one.
      for (const op of batchOps) {
        try {
          validateClientMessage({ type: 'push', bucket: opts.bucket, ops: [op] });
        } catch (e) {
          const err = e as MittsyncError;
          throw new MittsyncError(
            err.code,
            `${opts.file}, record ${op.originSeq - state.base} (key ${JSON.stringify(op.key).slice(0, 60)}): ${err.message}`,
          );
        }
      }
    }
    const last = state.base + lastN;
    let prevDone = prev === undefined;
    for (;;) {
      const ack = await client.push(opts.bucket, batchOps);
      const refused = ack.rejected?.[0];
      if (refused !== undefined) {
        throw new MittsyncError(
          refused.code,
          `record ${refused.originSeq - state.base} refused by the relay: ${refused.message}`,
        );
      }
      if (ack.upTo >= last) break;
      if (ack.gap === true && !prevDone) {
        // The batch before this one (they travel side by side) has not reached the relay yet:
        // wait for its ack and send this one again (the relay drops what it already has).
        await prev;
        prevDone = true;
        continue;
      }
      throw new MittsyncError(
        'INTERNAL',
        `the relay acknowledged up to ${ack.upTo}, expected ${last}: another writer with this token's subject? (use a token of its own)`,
      );
    }
    // The checkpoint advances in file order.
    await prev;
    // `prev` is done, so `acked` is the previous batch's end.
    const count = lastN - state.acked;
    state.acked = lastN;
    state.ackedBytes = (state.ackedBytes ?? 0) + recBytes;
    saveCheckpoint(checkpointPath, state);
    entries += count;
    bytes += recBytes;
    progress.add(count, recBytes);
  };

  let batch: Op[] = [];
  let batchBytes = 0;
  let batchRecBytes = 0;
  let lastN = skip;
  /** Pushes in flight, oldest first (at most PUSH_WINDOW): the next batch is read meanwhile. */
  const pending: Promise<void>[] = [];
  let stopped = false;
  const flush = async () => {
    if (batch.length === 0) return;
    const ops = batch;
    const recBytes = batchRecBytes;
    const upTo = lastN;
    batch = [];
    batchBytes = 0;
    batchRecBytes = 0;
    if (pending.length >= PUSH_WINDOW) await pending.shift();
    const p = send(ops, recBytes, upTo, pending.at(-1));
    // A failed push ends the import at the next await of it, with its error.
    p.catch(() => undefined);
    pending.push(p);
  };
  const toOp = (r: ImportRecord): Op => ({
    origin: client.subject,
    originSeq: state.base + r.n,
    key: r.key,
    kind: r.deleted === true ? 'del' : 'set',
    ...(r.deleted === true ? {} : { value: r.value }),
    hlc: clock.tick(),
  });
  for await (const r of readRecords(opts.file, opts.format, opts.csv)) {
    if (r.n <= skip) continue;
    if (opts.max !== undefined && r.n - skip > opts.max) {
      stopped = true;
      break;
    }
    const op = toOp(r);
    const size = opBytes(op);
    if (batch.length >= maxOps || (batch.length > 0 && batchBytes + size > FRAME_BUDGET)) await flush();
    batch.push(op);
    batchBytes += size;
    batchRecBytes += r.bytes;
    lastN = r.n;
  }
  await flush();
  for (const p of pending) await p;
  if (!stopped) {
    state.done = true;
    saveCheckpoint(checkpointPath, state);
  }
  const s = (performance.now() - started) / 1000;
  progress.stop(
    `import ${opts.bucket}: ${summaryOf(entries, bytes, s)}${skip > 0 ? `, after ${skip} records of an earlier run` : ''}${stopped ? ` (stopped: --max; run again to continue from ${checkpointPath})` : ''}`,
  );
  return { entries, bytes, acked: state.acked, complete: !stopped };
}
