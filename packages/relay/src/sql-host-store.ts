import type {
  BucketControl,
  Entry,
  Hlc,
  HostMeta,
  HostStore,
  RejectedOp,
  ReplicaRecord,
  SqlDriver,
  SqlValue,
  SubscriptionPolicy,
} from '@mittsync/core';
import { decodeValue, encodeValueView, isErrorCode, MittsyncError, packedEntry } from '@mittsync/core';
import { type ColumnParts, keysAscend } from '@mittsync/core/columns';
import { SortKeyWriter, sortKey, sortKeyIsNotUtf8 } from './sort-key';
import { ensureSchema, KEY_TEXT } from './sql-schema';

interface EntryRow extends Record<string, unknown> {
  key: string;
  hlc: string;
  seq: number;
  deleted: number;
  value: Uint8Array | null;
}

interface BucketRow extends Record<string, unknown> {
  id: number;
  epoch: string | null;
  head: number;
  horizon: number;
  purged_hlc: string;
  sum_count: number;
  sum_a: number;
  sum_b: number;
  gc_up_to: number;
}

interface ReplicaRow extends Record<string, unknown> {
  replica_id: string;
  policy: string;
  spec: string | null;
  acked: number;
  last_seen: number;
  dropped: number;
}

function rowToEntry(r: EntryRow): Entry {
  if (r.deleted) return { key: r.key, hlc: r.hlc, seq: r.seq, deleted: true };
  return { key: r.key, hlc: r.hlc, seq: r.seq, value: decodeValue(r.value as Uint8Array) };
}

/**
 * A row (its columns in {@link COLS} order, as a raw query returns them) whose value stays in
 * its stored MessagePack until read: pages copy it into frames.
 */
function rawToPackedEntry(r: SqlValue[]): Entry {
  const [key, hlc, seq, deleted, value] = r as [string, string, number, number, Uint8Array | null];
  return deleted ? { key, hlc, seq, deleted: true } : packedEntry(key, hlc, seq, value as Uint8Array);
}

/** {@link rawToPackedEntry} for a row as an object. */
const rowToPackedEntry = (r: EntryRow): Entry => rawToPackedEntry([r.key, r.hlc, r.seq, r.deleted, r.value]);

const COLS = `${KEY_TEXT} AS key, hlc, seq, deleted, value`;

/** The columns {@link SqlHostStore.pageColumns} aggregates. */
const PAGE_PARTS = 'sort_key, astral_key, hlc, seq, deleted, value';

const EMPTY_PARTS: ColumnParts = {
  keyBytes: new Uint8Array(0),
  keyEnds: [],
  hlcBytes: new Uint8Array(0),
  hlcEnds: [],
  seqs: [],
  vals: new Uint8Array(0),
  valEnds: [],
};

/** A BLOB column as bytes (NULL, from a concatenation of nothing but NULLs, as none). */
const asBytes = (v: SqlValue | undefined): Uint8Array => (v instanceof Uint8Array ? v : new Uint8Array(0));

/**
 * The `n` numbers of a comma-separated list (`group_concat` of integers); the list must hold
 * exactly `n` (else the result holds NaN, which {@link consistent} refuses).
 */
function numbersOf(list: SqlValue | undefined, n: number): Float64Array {
  const out = new Float64Array(n);
  if (typeof list !== 'string') return out.fill(Number.NaN);
  let k = 0;
  let x = 0;
  for (let i = 0; i < list.length; i++) {
    const c = list.charCodeAt(i);
    if (c === 44) {
      if (k < n) out[k] = x;
      k++;
      x = 0;
    } else x = x * 10 + (c - 48);
  }
  if (k !== n - 1) return out.fill(Number.NaN);
  out[k] = x;
  return out;
}

/** The running sums of a list of lengths: where each entry ends. */
function endsOf(list: SqlValue | undefined, n: number): Float64Array {
  const out = numbersOf(list, n);
  for (let i = 1; i < n; i++) out[i] = (out[i] as number) + (out[i - 1] as number);
  return out;
}

/** Whether columns read in bulk add up and their keys ascend. */
function consistent(p: ColumnParts & { n: number }): boolean {
  const { n } = p;
  return (
    p.keyEnds[n - 1] === p.keyBytes.length &&
    p.hlcEnds[n - 1] === p.hlcBytes.length &&
    p.valEnds[n - 1] === p.vals.length &&
    !Number.isNaN(p.seqs[n - 1]) &&
    keysAscend(p, n)
  );
}

/** One bucket as `GET /v1/admin/buckets` lists it. */
export interface BucketSummary {
  bucket: string;
  epoch: string | null;
  head: number;
  /** Entries held, tombstones included. */
  entries: number;
  tombstones: number;
  /** Replica records (every replica served and not forgotten by a reset). */
  replicas: number;
}

/**
 * Buckets of a relay database in name order after `after`, with their sizes (admin API).
 * Counts walk the seq index of each bucket listed: an admin query, not a hot path.
 */
export function sqlBucketSummaries(
  sql: SqlDriver,
  after: string | undefined,
  limit: number,
): BucketSummary[] {
  ensureSchema(sql);
  return sql.exec<BucketSummary & Record<string, unknown>>(
    `SELECT name AS bucket, epoch, head,
       (SELECT count(*) FROM entries e WHERE e.b = buckets.id) AS entries,
       (SELECT count(*) FROM entries e INDEXED BY entries_by_seq WHERE e.b = buckets.id AND e.deleted = 1) AS tombstones,
       (SELECT count(*) FROM replicas r WHERE r.b = buckets.id) AS replicas
     FROM buckets WHERE name > ? ORDER BY name LIMIT ?`,
    after ?? '',
    limit,
  );
}

/** The sort key below every key (keys are never empty). */
const BEFORE_ALL: Uint8Array = new Uint8Array(0);

/**
 * The refusals stored in `received.refused`; anything that does not read as them (a file
 * edited by hand) reads as none: forgetting a refusal only leaves it to the checksum check.
 */
function parseRefused(json: string): RejectedOp[] {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    return [];
  }
  if (!Array.isArray(v)) return [];
  return v.filter(
    (r): r is RejectedOp =>
      typeof r === 'object' &&
      r !== null &&
      Number.isSafeInteger(r.originSeq) &&
      isErrorCode(r.code) &&
      typeof r.message === 'string',
  );
}

/**
 * A {@link HostStore} over any {@link SqlDriver}: better-sqlite3 on Node, `ctx.storage.sql`
 * in a Durable Object. Every statement binds its parameters; bucket names and keys never
 * reach the SQL text. Keys are looked up, ordered and bounded by their sort key (sort-key.ts),
 * so every page is in core's key order (UTF-16 code units), whatever SQLite's TEXT order.
 *
 * @example
 * ```ts
 * const host = new BucketHost({ bucket: 'todo:1', store: new SqlHostStore(driver, 'todo:1'), env });
 * ```
 */
export class SqlHostStore implements HostStore {
  private readonly b: number;
  /** Head and entry count as of the last meta write, for cheap `count` and query planning. */
  private head = 0;
  private countCache: { head: number; count: number } | undefined;
  /** Sort keys of the per-op path (a lookup and an upsert per op), in one reused buffer. */
  private readonly sortKeys = new SortKeyWriter();

  constructor(
    private readonly sql: SqlDriver,
    readonly bucket: string,
  ) {
    ensureSchema(sql);
    let rows = sql.exec<{ id: number }>('SELECT id FROM buckets WHERE name = ?', bucket);
    if (rows[0] === undefined) {
      sql.exec('INSERT INTO buckets (name) VALUES (?)', bucket);
      rows = sql.exec<{ id: number }>('SELECT id FROM buckets WHERE name = ?', bucket);
    }
    const row = rows[0];
    if (row === undefined)
      throw new MittsyncError('STORAGE_UNAVAILABLE', `could not register bucket ${bucket}`);
    this.b = row.id;
  }

  loadMeta(): HostMeta | undefined {
    const r = this.sql.exec<BucketRow>('SELECT * FROM buckets WHERE id = ?', this.b)[0];
    if (r === undefined || r.epoch === null) return undefined;
    this.head = r.head;
    return {
      epoch: r.epoch,
      head: r.head,
      horizon: r.horizon,
      purgedHlc: r.purged_hlc,
      sum: { count: r.sum_count, a: r.sum_a, b: r.sum_b },
      ...(r.gc_up_to > 0 ? { gcUpTo: r.gc_up_to } : {}),
    };
  }

  saveMeta(meta: HostMeta): void {
    this.sql.exec(
      'UPDATE buckets SET epoch = ?, head = ?, horizon = ?, purged_hlc = ?, sum_count = ?, sum_a = ?, sum_b = ?, gc_up_to = ? WHERE id = ?',
      meta.epoch,
      meta.head,
      meta.horizon,
      meta.purgedHlc,
      meta.sum.count,
      meta.sum.a,
      meta.sum.b,
      meta.gcUpTo ?? 0,
      this.b,
    );
    this.head = meta.head;
  }

  transaction<T>(fn: () => T): T {
    // Nested calls become savepoints (the relay wraps several pushes in one group commit).
    try {
      return this.sql.transaction(fn);
    } catch (e) {
      // Rolled back: forget what the failed writes told us about head and count.
      this.countCache = undefined;
      try {
        this.head = this.loadMeta()?.head ?? 0;
      } catch {
        // The original error is the one worth reporting.
      }
      throw e;
    }
  }

  getEntry(key: string): Entry | undefined {
    const r = this.sql.exec<EntryRow>(
      `SELECT ${COLS} FROM entries WHERE b = ? AND sort_key = ?`,
      this.b,
      this.sortKeys.of(key),
    )[0];
    return r === undefined ? undefined : rowToEntry(r);
  }

  putEntry(entry: Entry): void {
    // Values are stored as MessagePack: smaller and faster than JSON text, and the same bytes
    // as on the wire (pages copy them into frames as they are). SQLite copies the view.
    const value = entry.deleted ? null : encodeValueView(entry.value ?? null);
    this.sql.exec(
      `INSERT INTO entries (b, sort_key, astral_key, hlc, seq, deleted, value) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (b, sort_key) DO UPDATE SET hlc = excluded.hlc, seq = excluded.seq, deleted = excluded.deleted, value = excluded.value`,
      this.b,
      this.sortKeys.of(entry.key),
      // The same key has the same sort key: a conflict never changes the key's text.
      sortKeyIsNotUtf8(entry.key) ? entry.key : null,
      entry.hlc,
      entry.seq,
      entry.deleted ? 1 : 0,
      value,
    );
  }

  getReceived(origin: string): number {
    const r = this.sql.exec<{ origin_seq: number }>(
      'SELECT origin_seq FROM received WHERE b = ? AND origin = ?',
      this.b,
      origin,
    )[0];
    return r?.origin_seq ?? 0;
  }

  setReceived(origin: string, originSeq: number): void {
    this.sql.exec(
      `INSERT INTO received (b, origin, origin_seq) VALUES (?, ?, ?)
       ON CONFLICT (b, origin) DO UPDATE SET origin_seq = excluded.origin_seq`,
      this.b,
      origin,
      originSeq,
    );
  }

  getRefused(origin: string): RejectedOp[] {
    const r = this.sql.exec<{ refused: string | null }>(
      'SELECT refused FROM received WHERE b = ? AND origin = ?',
      this.b,
      origin,
    )[0];
    return r?.refused == null ? [] : parseRefused(r.refused);
  }

  setRefused(origin: string, refused: readonly RejectedOp[]): void {
    // The row has the origin's counter already (a refused op counts as received); else 0.
    this.sql.exec(
      `INSERT INTO received (b, origin, origin_seq, refused) VALUES (?, ?, 0, ?)
       ON CONFLICT (b, origin) DO UPDATE SET refused = excluded.refused`,
      this.b,
      origin,
      refused.length === 0 ? null : JSON.stringify(refused),
    );
  }

  scan(since: number, after: string | undefined, until: string | undefined, limit: number): Entry[] {
    return this.rows(since, after, until, limit).map(rowToEntry);
  }

  pageScan(
    since: number,
    after: string | undefined,
    until: string | undefined,
    limit: number,
    span?: number,
  ): Entry[] {
    if (this.sql.execRaw === undefined)
      return this.rows(since, after, until, limit, span).map(rowToPackedEntry);
    // Rows as arrays, no object each: a catch-up reads every entry this way.
    const { sql, params } = this.pageQuery(since, after, until, limit, COLS, span);
    return this.sql.execRaw(sql, ...params).map(rawToPackedEntry);
  }

  pageColumns(
    since: number,
    after: string | undefined,
    until: string | undefined,
    limit: number,
    maxValueBytes: number,
  ): (ColumnParts & { n: number }) | undefined {
    if (this.sql.execRaw === undefined) return undefined;
    // One row for the whole page: SQLite concatenates each column (BLOBs as they are, zero
    // bytes included) and lists the lengths, so nothing is made per entry in JavaScript.
    const { sql, params } = this.pageQuery(since, after, until, limit, PAGE_PARTS);
    const row = this.sql.execRaw(
      `SELECT count(*), count(astral_key), sum(deleted = 0 AND length(value) > ?),
        CAST(group_concat(sort_key, '') AS BLOB), group_concat(length(sort_key)),
        CAST(group_concat(hlc, '') AS BLOB), group_concat(length(CAST(hlc AS BLOB))),
        group_concat(seq),
        CAST(group_concat(CASE WHEN deleted = 0 AND length(value) <= ? THEN value END, '') AS BLOB),
        group_concat(CASE WHEN deleted = 0 THEN length(value) ELSE 0 END)
       FROM (${sql})`,
      maxValueBytes,
      maxValueBytes,
      ...params,
    )[0];
    if (row === undefined) return undefined;
    const [n, astral, big, keyBytes, keyLens, hlcBytes, hlcLens, seqs, vals, valLens] = row;
    // Keys past U+FFFF have no UTF-8 sort key; large values go entry by entry (bounded reads).
    if (typeof n !== 'number' || astral !== 0 || (n > 0 && big !== 0)) return undefined;
    if (n === 0) return { n, ...EMPTY_PARTS };
    const parts = {
      n,
      keyBytes: asBytes(keyBytes),
      keyEnds: endsOf(keyLens, n),
      hlcBytes: asBytes(hlcBytes),
      hlcEnds: endsOf(hlcLens, n),
      seqs: numbersOf(seqs, n),
      vals: asBytes(vals),
      valEnds: endsOf(valLens, n),
    };
    // The rows of a subquery reach the aggregate in its order in practice, but SQLite does not
    // promise it: a page out of key order is read again entry by entry.
    return consistent(parts) ? parts : undefined;
  }

  private rows(
    since: number,
    after: string | undefined,
    until: string | undefined,
    limit: number,
    span?: number,
  ): EntryRow[] {
    const { sql, params } = this.pageQuery(since, after, until, limit, COLS, span);
    return this.sql.exec<EntryRow>(sql, ...params);
  }

  /** The query for a page of entries changed after `since`, in key order after `after`. */
  private pageQuery(
    since: number,
    after: string | undefined,
    until: string | undefined,
    limit: number,
    cols = COLS,
    span?: number,
  ): { sql: string; params: SqlValue[] } {
    // A resume asks for the few entries changed since its checkpoint: walk the seq index and
    // sort those, instead of the whole bucket in key order. Joins walk the key order. A range
    // of known size (`span`, a cached page) is walked by seq only when a tenth of that many
    // changed in the whole bucket: each entry the seq walk visits costs about ten times what
    // one of the range costs in key order (the page cache of a 100k join, 4,000-entry pages:
    // ~2 ms a page by seq with 1,000 changed, 8-12 ms with 3,000, 0.7-1 ms in key order).
    const dirty = this.head - since;
    const bySeq = since > 0 && (span === undefined ? dirty * 4 < this.count() : dirty * 10 < span);
    const from = bySeq ? 'entries INDEXED BY entries_by_seq' : 'entries';
    // Bounds are sort keys (BLOBs): a TEXT bound would compare below every BLOB in SQLite.
    const lo = after === undefined ? BEFORE_ALL : sortKey(after);
    return until === undefined
      ? {
          sql: `SELECT ${cols} FROM ${from} WHERE b = ? AND seq > ? AND sort_key > ? ORDER BY sort_key LIMIT ?`,
          params: [this.b, since, lo, limit],
        }
      : {
          sql: `SELECT ${cols} FROM ${from} WHERE b = ? AND seq > ? AND sort_key > ? AND sort_key <= ? ORDER BY sort_key LIMIT ?`,
          params: [this.b, since, lo, sortKey(until), limit],
        };
  }

  splitKeys(parts: number): string[] {
    const n = this.count();
    const out: string[] = [];
    if (parts < 2 || n < parts) return out;
    const step = Math.floor(n / parts);
    // One pass over the (b, sort_key) primary key: each split continues after the previous one.
    let prev = BEFORE_ALL;
    for (let p = 1; p < parts; p++) {
      const r = this.sql.exec<{ key: string }>(
        `SELECT ${KEY_TEXT} AS key FROM entries WHERE b = ? AND sort_key > ? ORDER BY sort_key LIMIT 1 OFFSET ?`,
        this.b,
        prev,
        step - 1,
      )[0];
      if (r === undefined) break;
      out.push(r.key);
      prev = sortKey(r.key);
    }
    return out;
  }

  /**
   * Entries in the bucket, tombstones included. Exact for small buckets; for large ones a
   * recent count is reused until the head moves by a tenth of it (only query planning and
   * download splitting use it, and a full count walks an index).
   */
  count(): number {
    const c = this.countCache;
    if (
      c !== undefined &&
      (c.head === this.head || (c.count >= 10_000 && this.head - c.head <= c.count / 10))
    ) {
      return c.count;
    }
    const r = this.sql.exec<{ n: number }>('SELECT count(*) AS n FROM entries WHERE b = ?', this.b)[0];
    const count = r?.n ?? 0;
    this.countCache = { head: this.head, count };
    return count;
  }

  purgeTombstones(upTo: number, olderThan: Hlc): { purged: number; maxHlc: Hlc } {
    const where = 'WHERE b = ? AND seq <= ? AND deleted = 1 AND hlc < ?';
    const r = this.sql.exec<{ n: number; h: string | null }>(
      `SELECT count(*) AS n, max(hlc) AS h FROM entries ${where}`,
      this.b,
      upTo,
      olderThan,
    )[0];
    const purged = r?.n ?? 0;
    if (purged > 0) this.sql.exec(`DELETE FROM entries ${where}`, this.b, upTo, olderThan);
    this.countCache = undefined;
    return { purged, maxHlc: r?.h ?? '' };
  }

  takeTombstones(after: number, upTo: number, limit: number): Entry[] {
    const rows = this.sql.exec<EntryRow>(
      `SELECT ${COLS} FROM entries INDEXED BY entries_by_seq WHERE b = ? AND seq > ? AND seq <= ? AND deleted = 1 ORDER BY seq LIMIT ?`,
      this.b,
      after,
      upTo,
      limit,
    );
    const last = rows[rows.length - 1];
    if (last === undefined) return [];
    this.sql.exec(
      'DELETE FROM entries WHERE b = ? AND seq > ? AND seq <= ? AND deleted = 1',
      this.b,
      after,
      last.seq,
    );
    this.countCache = undefined;
    return rows.map(rowToEntry);
  }

  countTombstones(): number {
    const r = this.sql.exec<{ n: number }>(
      'SELECT count(*) AS n FROM entries INDEXED BY entries_by_seq WHERE b = ? AND deleted = 1',
      this.b,
    )[0];
    return r?.n ?? 0;
  }

  listReplicas(): ReplicaRecord[] {
    return this.sql
      .exec<ReplicaRow>(
        'SELECT replica_id, policy, spec, acked, last_seen, dropped FROM replicas WHERE b = ? ORDER BY replica_id',
        this.b,
      )
      .map((r) => ({
        replicaId: r.replica_id,
        policy: r.policy as SubscriptionPolicy,
        acked: r.acked,
        lastSeen: r.last_seen,
        ...(r.spec === null ? {} : { spec: JSON.parse(r.spec) as unknown }),
        ...(r.dropped ? { dropped: true } : {}),
      }));
  }

  putReplica(record: ReplicaRecord): void {
    this.sql.exec(
      `INSERT INTO replicas (b, replica_id, policy, spec, acked, last_seen, dropped) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (b, replica_id) DO UPDATE SET policy = excluded.policy, spec = excluded.spec,
         acked = excluded.acked, last_seen = excluded.last_seen, dropped = excluded.dropped`,
      this.b,
      record.replicaId,
      record.policy,
      record.spec === undefined ? null : JSON.stringify(record.spec),
      record.acked,
      record.lastSeen,
      record.dropped === true ? 1 : 0,
    );
  }

  clearReplicas(): void {
    this.sql.exec('DELETE FROM replicas WHERE b = ?', this.b);
  }

  loadPurgedSlots(): [number, Hlc][] {
    return this.sql
      .exec<{ slot: number; hlc: string }>('SELECT slot, hlc FROM purged_slots WHERE b = ?', this.b)
      .map((r) => [r.slot, r.hlc]);
  }

  savePurgedSlot(slot: number, hlc: Hlc): void {
    this.sql.exec(
      `INSERT INTO purged_slots (b, slot, hlc) VALUES (?, ?, ?)
       ON CONFLICT (b, slot) DO UPDATE SET hlc = excluded.hlc`,
      this.b,
      slot,
      hlc,
    );
  }

  loadControl(): BucketControl | undefined {
    const r = this.sql.exec<{ control: string | null }>(
      'SELECT control FROM buckets WHERE id = ?',
      this.b,
    )[0];
    return r?.control == null ? undefined : (JSON.parse(r.control) as BucketControl);
  }

  saveControl(control: BucketControl): void {
    this.sql.exec('UPDATE buckets SET control = ? WHERE id = ?', JSON.stringify(control), this.b);
  }
}
