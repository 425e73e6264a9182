import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { MittsyncError, type Value } from '@mittsync/core';
import { parse } from 'csv-parse';

/** One record of an import file: a value to set under `key`, or a delete. */
export interface ImportRecord {
  /** 1-based position among the file's records (data rows for CSV, non-blank lines for NDJSON). */
  n: number;
  key: string;
  value?: Value;
  deleted?: boolean;
  /** Its size in the file, for progress. */
  bytes: number;
}

export type ImportFormat = 'ndjson' | 'csv';

/** The format a file name implies: `.csv` is CSV, anything else NDJSON. */
export function formatOf(file: string): ImportFormat {
  return /\.csv$/i.test(file) ? 'csv' : 'ndjson';
}

const bad = (where: string, message: string) => new MittsyncError('BAD_MESSAGE', `${where}: ${message}`);

/**
 * NDJSON records: one JSON object per line, `{"key": "...", "value": ...}` (what `mittsync
 * export` writes) or `{"key": "...", "deleted": true}`. Blank lines are skipped.
 */
async function* ndjsonRecords(file: string): AsyncGenerator<ImportRecord> {
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Number.POSITIVE_INFINITY });
  let lineNo = 0;
  let n = 0;
  for await (const line of lines) {
    lineNo++;
    if (line.trim() === '') continue;
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch (e) {
      throw bad(`${file}:${lineNo}`, `not JSON (${(e as Error).message})`);
    }
    if (typeof rec !== 'object' || rec === null || Array.isArray(rec))
      throw bad(`${file}:${lineNo}`, 'expected an object {"key": ..., "value": ...}');
    const { key, value, deleted } = rec as { key?: unknown; value?: unknown; deleted?: unknown };
    if (typeof key !== 'string' || key === '')
      throw bad(`${file}:${lineNo}`, '"key" must be a non-empty string');
    n++;
    const bytes = Buffer.byteLength(line) + 1;
    if (deleted === true) yield { n, key, deleted: true, bytes };
    else if (value === undefined) throw bad(`${file}:${lineNo}`, 'needs "value" (or "deleted": true)');
    else yield { n, key, value: value as Value, bytes };
  }
}

export interface CsvOptions {
  /** The column holding the key (default `key` if the header has it, else the first column). */
  keyColumn?: string | undefined;
  /** Turn numbers and true/false into JSON numbers and booleans (default: every value a string). */
  cast?: boolean;
}

/**
 * CSV records: the header row names the columns; each row becomes the value object of its
 * other columns, under the key column's value.
 */
async function* csvRecords(file: string, opts: CsvOptions): AsyncGenerator<ImportRecord> {
  const parser = createReadStream(file).pipe(
    parse({ columns: true, bom: true, skip_empty_lines: true, info: true, relax_column_count: false }),
  );
  let keyColumn = opts.keyColumn;
  let n = 0;
  let lastOffset = 0;
  for await (const { record, info } of parser as AsyncIterable<{
    record: Record<string, string>;
    info: { lines: number; bytes: number };
  }>) {
    if (keyColumn === undefined) {
      const columns = Object.keys(record);
      keyColumn = columns.includes('key') ? 'key' : columns[0];
    }
    const where = `${file}:${info.lines}`;
    if (keyColumn === undefined || !(keyColumn in record))
      throw bad(where, `no column ${keyColumn ?? '(none)'}`);
    const key = record[keyColumn];
    if (key === undefined || key === '') throw bad(where, `empty key in column ${keyColumn}`);
    const value: Record<string, Value> = {};
    for (const [col, text] of Object.entries(record)) {
      if (col === keyColumn) continue;
      value[col] = opts.cast === true ? castCell(text) : text;
    }
    n++;
    const bytes = info.bytes - lastOffset;
    lastOffset = info.bytes;
    yield { n, key, value, bytes };
  }
}

function castCell(text: string): Value {
  if (text === 'true') return true;
  if (text === 'false') return false;
  if (text !== '' && /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/.test(text)) {
    const n = Number(text);
    if (Number.isFinite(n)) return n;
  }
  return text;
}

/** The records of an import file, read as a stream. */
export function readRecords(
  file: string,
  format: ImportFormat,
  csv: CsvOptions = {},
): AsyncGenerator<ImportRecord> {
  return format === 'csv' ? csvRecords(file, csv) : ndjsonRecords(file);
}
