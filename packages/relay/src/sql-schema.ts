import { MittsyncError, PURGED_SLOTS, type SqlDriver } from '@mittsync/core';
import { SortKeyWriter, sortKeyIsNotUtf8 } from './sort-key';

/**
 * Entries clustered by (bucket, sort key): a join's download walks one B-tree in key order
 * with each row's columns in place. (Schema 1 kept them in a rowid table behind a (b, key)
 * index, one lookup in each per row: reading 200,000 entries inserted in random key order in
 * pages of 2,000 took 1.3 s there and 0.38 s here.)
 *
 * Keys are looked up, ordered and range-scanned by `sort_key` (sort-key.ts): SQLite orders
 * TEXT by UTF-8 bytes, the protocol by UTF-16 code units, and the two part where U+E000..U+FFFF
 * meet characters past U+FFFF. The key itself is read back from the sort key
 * ({@link KEY_TEXT}), which is its UTF-8 unless the key holds a character past U+FFFF; only
 * those keys are also kept as TEXT, in `astral_key` (NULL for the others). Keeping every key
 * twice made the table 29% larger (200,000 keys of ~25 ASCII characters) and inserts 5 to 15%
 * slower. Schema 2 had `key TEXT` as the primary key, in UTF-8 order.
 */
function entriesTable(name: string): string {
  return `CREATE TABLE IF NOT EXISTS ${name} (
    b INTEGER NOT NULL,
    sort_key BLOB NOT NULL,
    astral_key TEXT,
    hlc TEXT NOT NULL,
    seq INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    value BLOB,
    PRIMARY KEY (b, sort_key)
  ) WITHOUT ROWID`;
}

/**
 * An entry's key, in SQL: its TEXT where it has one, else its sort key read as TEXT (UTF-8,
 * the database's encoding: SQLite's default, which the relay never changes).
 */
export const KEY_TEXT = 'coalesce(astral_key, CAST(sort_key AS TEXT))';

const ENTRIES_BY_SEQ = `CREATE INDEX IF NOT EXISTS entries_by_seq ON entries (b, seq, sort_key)`;

const META = `CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)`;

/** The replicas each bucket has served (core `ReplicaRecord`); `spec` is JSON text. */
const REPLICAS = `CREATE TABLE IF NOT EXISTS replicas (
    b INTEGER NOT NULL,
    replica_id TEXT NOT NULL,
    policy TEXT NOT NULL,
    spec TEXT,
    acked INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    dropped INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (b, replica_id)
  ) WITHOUT ROWID`;

/** The purged-key record (core `PurgedKeys`): per key slot, the greatest purged tombstone HLC. */
const PURGED_SLOTS_TABLE = `CREATE TABLE IF NOT EXISTS purged_slots (
    b INTEGER NOT NULL,
    slot INTEGER NOT NULL,
    hlc TEXT NOT NULL,
    PRIMARY KEY (b, slot)
  ) WITHOUT ROWID`;

/**
 * The relay's tables. One database holds every bucket (`b` is the bucket's row id), so a group
 * commit spanning many buckets is one transaction and one fsync, the number of open files does
 * not grow with the number of buckets, and bucket names never become file names. A Durable
 * Object (one bucket per database) uses the same tables with a single `buckets` row.
 */
const SCHEMA = [
  META,
  `CREATE TABLE IF NOT EXISTS buckets (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    epoch TEXT,
    head INTEGER NOT NULL DEFAULT 0,
    horizon INTEGER NOT NULL DEFAULT 0,
    purged_hlc TEXT NOT NULL DEFAULT '',
    sum_count INTEGER NOT NULL DEFAULT 0,
    sum_a INTEGER NOT NULL DEFAULT 0,
    sum_b INTEGER NOT NULL DEFAULT 0,
    gc_up_to INTEGER NOT NULL DEFAULT 0,
    control TEXT
  )`,
  entriesTable('entries'),
  // Covers resumes ("changed since"), tombstone purges, and the key filter of ranged resumes.
  ENTRIES_BY_SEQ,
  // `refused`: JSON of the origin's latest refused ops (core `HostStore.getRefused`).
  `CREATE TABLE IF NOT EXISTS received (
    b INTEGER NOT NULL,
    origin TEXT NOT NULL,
    origin_seq INTEGER NOT NULL,
    refused TEXT,
    PRIMARY KEY (b, origin)
  ) WITHOUT ROWID`,
  REPLICAS,
  PURGED_SLOTS_TABLE,
];

/** Bumped when the tables change incompatibly; a newer database is refused, not misread. */
export const SCHEMA_VERSION = 5;

/** Entries read per query while a migration copies them into the new table. */
export const MIGRATION_BATCH_ROWS = 500;

interface OldEntryRow extends Record<string, unknown> {
  b: number;
  key: string;
  hlc: string;
  seq: number;
  deleted: number;
  value: Uint8Array | null;
}

/**
 * Converts a schema-1 or schema-2 database in place, inside the caller's transaction: both
 * keep entries (b, key, hlc, seq, deleted, value) keyed by (b, key), schema 1 in a rowid
 * table. They are copied into the schema-3 table in batches, in (b, key) order, each with the
 * sort key of its key, computed here: Durable Objects run no SQL functions of ours. A key
 * that cannot be read back as it was stored fails the copy (a duplicate sort key) and, with
 * it, the transaction: the database stays as it was, and the relay does not start.
 */
function toVersion3(sql: SqlDriver): void {
  sql.exec(entriesTable('entries_next'));
  const sortKeys = new SortKeyWriter();
  const columns = 'b, key, hlc, seq, deleted, value FROM entries';
  let rows = sql.exec<OldEntryRow>(`SELECT ${columns} ORDER BY b, key LIMIT ?`, MIGRATION_BATCH_ROWS);
  while (rows.length > 0) {
    for (const r of rows) {
      sql.exec(
        'INSERT INTO entries_next (b, sort_key, astral_key, hlc, seq, deleted, value) VALUES (?, ?, ?, ?, ?, ?, ?)',
        r.b,
        sortKeys.of(r.key),
        sortKeyIsNotUtf8(r.key) ? r.key : null,
        r.hlc,
        r.seq,
        r.deleted,
        r.value,
      );
    }
    const last = rows[rows.length - 1] as OldEntryRow;
    rows = sql.exec<OldEntryRow>(
      `SELECT ${columns} WHERE (b, key) > (?, ?) ORDER BY b, key LIMIT ?`,
      last.b,
      last.key,
      MIGRATION_BATCH_ROWS,
    );
  }
  // Dropping the table drops its index; the schema creates the new one.
  sql.exec('DROP TABLE entries');
  sql.exec('ALTER TABLE entries_next RENAME TO entries');
}

/**
 * Schema 4 adds the replica records, the purged-key slots and the bucket's GC progress and
 * admin control. A bucket that purged tombstones under schema 3 only kept their greatest HLC
 * (`purged_hlc`), not their keys: every slot gets it, so no old write is wrongly accepted.
 */
function toVersion4(sql: SqlDriver): void {
  sql.exec('ALTER TABLE buckets ADD COLUMN gc_up_to INTEGER NOT NULL DEFAULT 0');
  sql.exec('ALTER TABLE buckets ADD COLUMN control TEXT');
  sql.exec(PURGED_SLOTS_TABLE);
  sql.exec(
    `INSERT INTO purged_slots (b, slot, hlc)
     WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < ?)
     SELECT buckets.id, s.n, buckets.purged_hlc FROM buckets, s WHERE buckets.purged_hlc != ''`,
    PURGED_SLOTS - 1,
  );
}

/** Schema 5 keeps each origin's latest refused ops beside its reception counter. */
function toVersion5(sql: SqlDriver): void {
  sql.exec('ALTER TABLE received ADD COLUMN refused TEXT');
}

const prepared = new WeakSet<SqlDriver>();

/**
 * Creates the tables if needed (once per driver) and checks the schema version: an older
 * database is converted in place, all in one transaction; a newer one is refused.
 */
export function ensureSchema(sql: SqlDriver): void {
  if (prepared.has(sql)) return;
  sql.transaction(() => {
    sql.exec(META);
    const rows = sql.exec<{ value: string }>(`SELECT value FROM meta WHERE name = 'schema_version'`);
    const found = rows[0] === undefined ? undefined : Number(rows[0].value);
    if (found !== undefined && (!Number.isInteger(found) || found < 1 || found > SCHEMA_VERSION)) {
      throw new MittsyncError(
        'STORAGE_UNAVAILABLE',
        `relay database has schema version ${found}; this relay understands ${SCHEMA_VERSION}`,
      );
    }
    if (found === 1 || found === 2) toVersion3(sql);
    if (found !== undefined && found < 4) toVersion4(sql);
    if (found !== undefined && found < 5) toVersion5(sql);
    for (const stmt of SCHEMA) sql.exec(stmt);
    if (found === undefined)
      sql.exec(`INSERT INTO meta (name, value) VALUES ('schema_version', ?)`, String(SCHEMA_VERSION));
    else if (found !== SCHEMA_VERSION)
      sql.exec(`UPDATE meta SET value = ? WHERE name = 'schema_version'`, String(SCHEMA_VERSION));
  });
  prepared.add(sql);
}
