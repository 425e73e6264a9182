import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureSchema, SqlHostStore } from '@mittsync/relay';
import { SqliteDriver } from '@mittsync/relay/node';
import Database from 'better-sqlite3';

const d = new SqliteDriver(join(mkdtempSync(join(tmpdir(), 'plan-')), 'r.db'));
ensureSchema(d);
const db = d.db;
const ins = db.prepare('INSERT INTO entries (b, key, hlc, seq, deleted, value) VALUES (1, ?, ?, ?, 0, ?)');
const v = Buffer.alloc(90, 1);
db.transaction(() => {
  for (let i = 0; i < 100000; i++)
    ins.run(`k${String(i).padStart(7, '0')}`, '0000018c3a2b1c4d|0001|writer', i + 1, v);
})();
for (const sql of [
  'SELECT key, hlc, seq, deleted, value FROM entries WHERE b = ? AND seq > ? AND key > ? AND key <= ? ORDER BY key LIMIT ?',
  'SELECT key, hlc, seq, deleted, value FROM entries WHERE b = ? AND seq > ? AND key > ? ORDER BY key LIMIT ?',
]) {
  const args = sql.includes('key <=') ? [1, 0, 'k0010000', 'k0050000', 2000] : [1, 0, 'k0010000', 2000];
  console.log(
    db
      .prepare('EXPLAIN QUERY PLAN ' + sql)
      .all(...args)
      .map((r: any) => r.detail),
  );
}
const st = db.prepare(
  'SELECT key, hlc, seq, deleted, value FROM entries WHERE b = ? AND seq > ? AND key > ? AND key <= ? ORDER BY key LIMIT ?',
);
let t = performance.now();
let after = '';
for (let p = 0; p < 50; p++) {
  const rows = st.all(1, 0, after, 'k9999999', 2000) as any[];
  after = rows[rows.length - 1].key;
}
console.log('50 pages', (performance.now() - t).toFixed(0), 'ms');
db.exec('ANALYZE');
t = performance.now();
after = '';
for (let p = 0; p < 50; p++) {
  const rows = st.all(1, 0, after, 'k9999999', 2000) as any[];
  after = rows[rows.length - 1].key;
}
console.log('after ANALYZE 50 pages', (performance.now() - t).toFixed(0), 'ms');
