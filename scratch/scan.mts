import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureSchema, SqlHostStore } from '@mittsync/relay';
import { SqliteDriver } from '@mittsync/relay/node';

const N = Number(process.argv[2] ?? 1000000);
const mode = process.argv[3] ?? 'default';
const dir = mkdtempSync(join(tmpdir(), 'scan-'));
const opts =
  mode === 'small' ? { cacheMiB: 2, mmapBytes: 0 } : mode === 'cache' ? { cacheMiB: 64, mmapBytes: 0 } : {};
const d = new SqliteDriver(join(dir, 'r.db'), opts);
ensureSchema(d);
const ins = d.db.prepare('INSERT INTO entries (b, key, hlc, seq, deleted, value) VALUES (1, ?, ?, ?, 0, ?)');
const v = Buffer.alloc(90, 1);
d.db.transaction(() => {
  for (let i = 0; i < N; i++)
    ins.run(`k${String(i).padStart(7, '0')}`, '0000018c3a2b1c4d|0001|writer', i + 1, v);
})();
d.db.close();
const d2 = new SqliteDriver(join(dir, 'r.db'), opts);
const st = d2.db.prepare(
  'SELECT key, hlc, seq, deleted, value FROM entries WHERE b = ? AND seq > ? AND key > ? AND key <= ? ORDER BY key LIMIT ?',
);
const up = d2.db.prepare('UPDATE entries SET hlc = ?, value = ? WHERE b = 1 AND key = ?');
const t = performance.now();
const ranges = [0, 1, 2, 3].map((r) => ({
  after: `k${String((r * N) / 4).padStart(7, '0')}`,
  until: `k${String(((r + 1) * N) / 4).padStart(7, '0')}`,
  done: false,
}));
ranges[0]!.after = '';
let rows = 0;
let w = 0;
while (ranges.some((r) => !r.done)) {
  for (const r of ranges) {
    if (r.done) continue;
    const got = st.all(1, 0, r.after, r.until, 2000) as { key: string }[];
    rows += got.length;
    if (got.length < 2000) r.done = true;
    else r.after = got[got.length - 1]!.key;
    // a writer: ~5 random updates per page served
    d2.db.transaction(() => {
      for (let i = 0; i < 5; i++) {
        const k = Math.floor(Math.random() * N);
        up.run('0000018c3a2b1c4e|0001|w', v, `k${String(k).padStart(7, '0')}`);
        w++;
      }
    })();
  }
}
console.log(mode, N, 'rows', rows, 'writes', w, (performance.now() - t).toFixed(0), 'ms');
